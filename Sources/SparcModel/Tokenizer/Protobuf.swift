/// The protobuf wire format, as much of it as SentencePiece's `ModelProto` needs. Every read
/// checks what is left of the message first, so a truncated or corrupt file gives a
/// `ProtobufError`, never a crash or a read past the end.
struct ProtobufReader {
    /// How a field's value is encoded (the low 3 bits of its tag).
    enum WireType: Int, Sendable {
        case varint = 0, fixed64 = 1, lengthDelimited = 2, startGroup = 3, endGroup = 4, fixed32 = 5
    }

    private let bytes: [UInt8]
    /// The next byte to read; offsets in errors are counted from the start of the file.
    private(set) var offset: Int
    private let end: Int

    init(_ bytes: [UInt8]) {
        self.bytes = bytes
        offset = 0
        end = bytes.count
    }

    /// A reader over `range` of the same bytes (an embedded message).
    private init(_ bytes: [UInt8], range: Range<Int>) {
        self.bytes = bytes
        offset = range.lowerBound
        end = range.upperBound
    }

    var isAtEnd: Bool { offset >= end }

    /// The next field's number and wire type.
    mutating func tag() throws -> (field: Int, wire: WireType) {
        let start = offset
        let t = try varint()
        let field = t >> 3
        // Field numbers are 1 ... 2^29 - 1.
        guard field >= 1 && field < 1 << 29 else { throw ProtobufError.invalidFieldNumber(offset: start) }
        guard let wire = WireType(rawValue: Int(t & 7)) else { throw ProtobufError.invalidWireType(offset: start, wireType: Int(t & 7)) }
        return (Int(field), wire)
    }

    /// A base-128 varint: at most 10 bytes, low groups first.
    mutating func varint() throws -> UInt64 {
        let start = offset
        var value: UInt64 = 0
        for shift in stride(from: 0, to: 70, by: 7) {
            guard offset < end else { throw ProtobufError.truncatedVarint(offset: start) }
            let b = bytes[offset]
            offset += 1
            // The tenth byte holds the 64th bit only.
            if shift == 63 && b > 1 { throw ProtobufError.varintTooLong(offset: start) }
            value |= UInt64(b & 0x7F) << UInt64(shift)
            if b & 0x80 == 0 { return value }
        }
        throw ProtobufError.varintTooLong(offset: start)
    }

    /// A 4-byte little-endian value (`float`, `fixed32`).
    mutating func fixed32() throws -> UInt32 {
        guard end - offset >= 4 else { throw ProtobufError.truncatedFixed(offset: offset, size: 4) }
        var v: UInt32 = 0
        for k in 0..<4 { v |= UInt32(bytes[offset + k]) << UInt32(8 * k) }
        offset += 4
        return v
    }

    /// The bytes of a length-delimited field (`string`, `bytes`, an embedded message).
    mutating func lengthDelimited() throws -> ArraySlice<UInt8> {
        let range = try lengthDelimitedRange()
        return bytes[range]
    }

    /// A reader over an embedded message.
    mutating func message() throws -> ProtobufReader {
        ProtobufReader(bytes, range: try lengthDelimitedRange())
    }

    /// Steps over a field that is not read. Groups (wire types 3 and 4, deprecated since
    /// proto2 and unused by SentencePiece) are refused rather than walked.
    mutating func skip(_ wire: WireType) throws {
        switch wire {
        case .varint: _ = try varint()
        case .fixed64:
            guard end - offset >= 8 else { throw ProtobufError.truncatedFixed(offset: offset, size: 8) }
            offset += 8
        case .lengthDelimited: _ = try lengthDelimitedRange()
        case .fixed32: _ = try fixed32()
        case .startGroup, .endGroup: throw ProtobufError.invalidWireType(offset: offset, wireType: wire.rawValue)
        }
    }

    private mutating func lengthDelimitedRange() throws -> Range<Int> {
        let start = offset
        let length = try varint()
        // Compared as UInt64 before converting: a huge length must not overflow Int.
        guard length <= UInt64(end - offset) else {
            throw ProtobufError.lengthPastEnd(offset: start, length: length, available: end - offset)
        }
        let range = offset..<(offset + Int(length))
        offset = range.upperBound
        return range
    }
}

/// What is wrong with a protobuf message, and where (offsets from the start of the file).
enum ProtobufError: Error, Equatable, CustomStringConvertible {
    case truncatedVarint(offset: Int)
    case varintTooLong(offset: Int)
    case truncatedFixed(offset: Int, size: Int)
    case lengthPastEnd(offset: Int, length: UInt64, available: Int)
    case invalidFieldNumber(offset: Int)
    case invalidWireType(offset: Int, wireType: Int)
    /// A known field encoded with another wire type than its schema's.
    case wrongWireType(field: String, expected: ProtobufReader.WireType, found: ProtobufReader.WireType)

    var description: String {
        switch self {
        case .truncatedVarint(let o): "the file ends inside a varint at byte \(o) (truncated?)"
        case .varintTooLong(let o): "the varint at byte \(o) is longer than 10 bytes"
        case .truncatedFixed(let o, let n): "the file ends inside a \(n)-byte value at byte \(o) (truncated?)"
        case .lengthPastEnd(let o, let n, let left): "the field at byte \(o) says it is \(n) bytes long, but only \(left) are left in its message (truncated?)"
        case .invalidFieldNumber(let o): "the tag at byte \(o) has field number 0 or one too large"
        case .invalidWireType(let o, let w): "the tag at byte \(o) has wire type \(w), which sparc does not read (groups or no such type)"
        case .wrongWireType(let f, let e, let w): "\(f) has wire type \(w.rawValue), its schema says \(e.rawValue)"
        }
    }
}
