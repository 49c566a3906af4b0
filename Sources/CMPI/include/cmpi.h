// MPI, loaded at run time (dlopen) rather than linked, so that sparc builds and runs
// where no MPI is installed and one binary works with or without `mpirun`.
// Open MPI and MPICH differ in ABI (Open MPI's handles are pointers to its predefined
// objects, MPICH's are integers): this shim hides both behind one small interface.
#ifndef SPARC_CMPI_H
#define SPARC_CMPI_H

#include <stddef.h>
#include <stdint.h>

/// Loads `library` (a path or soname), resolves the functions and handles sparc uses.
/// Returns 0, or -1 with the reason in `sparc_mpi_error()`.
int sparc_mpi_load(const char *library);
/// "Open MPI" or "MPICH" once loaded.
const char *sparc_mpi_flavour(void);
const char *sparc_mpi_error(void);

/// MPI_Init (if not initialised yet), then rank and size of MPI_COMM_WORLD.
int sparc_mpi_init(int *rank, int *size);
/// In place: buffer[i] = Σ over ranks of buffer[i] (count ≤ INT32_MAX).
int sparc_mpi_allreduce_sum_double(double *buffer, int count);
/// Every rank's `value`, in rank order, into `out[size]`.
int sparc_mpi_allgather_int64(int64_t value, int64_t *out);
/// Every rank's bytes, concatenated in rank order into `out`; counts[r] bytes from rank r
/// (each ≤ INT32_MAX, and so is their sum).
int sparc_mpi_allgatherv_bytes(const void *bytes, int count, void *out, const int *counts);
int sparc_mpi_barrier(void);
/// Ends every rank of the job (MPI_Abort on MPI_COMM_WORLD).
void sparc_mpi_abort(int code);
int sparc_mpi_finalize(void);
/// MPI_Get_library_version's text (first line), or "" before loading.
const char *sparc_mpi_library_version(void);

#endif
