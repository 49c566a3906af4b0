import CMPI
import Foundation

/// MPI_COMM_WORLD through the MPI library found at run time (see `CMPI`): the same sparc
/// binary runs alone or under `mpirun`/`srun`, and builds where no MPI is installed.
public final class MPICommunicator: Communicator {
    public let rank: Int
    public let size: Int
    public let library: String

    /// Loads the library (`SPARC_MPI_LIBRARY`, else Open MPI's then MPICH's soname) and
    /// joins the job.
    init(environment: [String: String]) throws {
        let candidates = environment["SPARC_MPI_LIBRARY"].map { [$0] } ?? ["libmpi.so.40", "libmpich.so.12", "libmpi.so.12", "libmpi.so"]
        var reasons: [String] = []
        var loaded = false
        for name in candidates {
            if sparc_mpi_load(name) == 0 { loaded = true; break }
            reasons.append(String(cString: sparc_mpi_error()))
        }
        guard loaded else {
            throw ClusterError.launch("started by an MPI launcher, but no MPI library loads (\(reasons.joined(separator: "; "))); install Open MPI (Debian: openmpi-bin) or set SPARC_MPI_LIBRARY to its libmpi")
        }
        var r: Int32 = 0, s: Int32 = 0
        guard sparc_mpi_init(&r, &s) == 0 else { throw ClusterError.launch("MPI_Init failed") }
        rank = Int(r)
        size = Int(s)
        let version = String(cString: sparc_mpi_library_version())
        library = version.isEmpty ? String(cString: sparc_mpi_flavour()) : version
    }

    public func allReduceSum(_ buffer: UnsafeMutableBufferPointer<Double>) throws {
        guard buffer.count > 0 else { return }
        guard buffer.count <= Int(Int32.max) else { throw ClusterError.communication("all-reduce of \(buffer.count) values: at most \(Int32.max) per call") }
        guard sparc_mpi_allreduce_sum_double(buffer.baseAddress!, Int32(buffer.count)) == 0 else {
            throw ClusterError.communication("MPI_Allreduce failed")
        }
    }

    public func allGather(_ bytes: [UInt8]) throws -> [[UInt8]] {
        var counts = [Int64](repeating: 0, count: size)
        guard sparc_mpi_allgather_int64(Int64(bytes.count), &counts) == 0 else { throw ClusterError.communication("MPI_Allgather failed") }
        let total = counts.reduce(0, +)
        guard total <= Int64(Int32.max) else { throw ClusterError.communication("gathering \(total) bytes: at most \(Int32.max) in one call") }
        let sizes = counts.map { Int32($0) }
        var out = [UInt8](repeating: 0, count: Int(total))
        let rc = bytes.withUnsafeBytes { send in
            out.withUnsafeMutableBytes { recv in
                sparc_mpi_allgatherv_bytes(send.baseAddress, Int32(bytes.count), recv.baseAddress, sizes)
            }
        }
        guard rc == 0 else { throw ClusterError.communication("MPI_Allgatherv failed") }
        var parts: [[UInt8]] = []
        var offset = 0
        for c in counts.map(Int.init) {
            parts.append(Array(out[offset..<offset + c]))
            offset += c
        }
        return parts
    }

    public func abort(code: Int32) -> Never {
        sparc_mpi_abort(code)
        exit(code)  // MPI_Abort does not return; this satisfies the type checker.
    }

    public func finish() { _ = sparc_mpi_finalize() }
}
