import Foundation
import SparcFormats

/// A SentencePiece model file (`tokenizer.model`, the `ModelProto` of sentencepiece's
/// `sentencepiece_model.proto`), read by hand: the pieces and the few trainer and normalizer
/// settings that change how text is encoded. Field numbers are those of the proto:
///
///     ModelProto     { repeated SentencePiece pieces = 1; TrainerSpec trainer_spec = 2;
///                      NormalizerSpec normalizer_spec = 3; }
///     SentencePiece  { string piece = 1; float score = 2; Type type = 3; }
///     TrainerSpec    { ModelType model_type = 3; bool treat_whitespace_as_suffix = 24;
///                      bool byte_fallback = 35; int32 unk_id = 40, bos_id = 41, eos_id = 42,
///                      pad_id = 43; }
///     NormalizerSpec { string name = 1; bytes precompiled_charsmap = 2; bool add_dummy_prefix = 3;
///                      bool remove_extra_whitespaces = 4; bool escape_whitespaces = 5; }
///
/// Every other field is skipped. Defaults are the proto's (an absent model_type is UNIGRAM).
struct SentencePieceModelFile: Sendable {
    struct Piece: Sendable, Equatable {
        var text = ""
        var score: Float = 0
        /// NORMAL 1, UNKNOWN 2, CONTROL 3, USER_DEFINED 4, UNUSED 5, BYTE 6: the values of
        /// llama.cpp's token types, so `SentencePieceModel.TokenType(rawValue:)` reads them.
        var type = 1
    }

    /// TrainerSpec.ModelType.
    enum ModelType: Int, Sendable {
        case unigram = 1, bpe, word, char
    }

    var pieces: [Piece] = []
    /// The raw TrainerSpec.model_type (unknown values are kept to be named in errors).
    var modelType = ModelType.unigram.rawValue
    var byteFallback = false
    var treatWhitespaceAsSuffix = false
    /// -1: none.
    var unkId = 0, bosId = 1, eosId = 2, padId = -1
    var normalizerName = ""
    /// Size of the compiled normalization rules; 0 for the identity normalizer.
    var precompiledCharsmapCount = 0
    var addDummyPrefix = true
    var removeExtraWhitespaces = true
    var escapeWhitespaces = true

    /// What a well-formed protobuf can still get wrong for sparc.
    enum Error: Swift.Error, Equatable, CustomStringConvertible {
        case empty
        case noPieces
        case invalidPiece(index: Int, String)
        case unsupported(String)

        var description: String {
            switch self {
            case .empty: "the file is empty"
            case .noPieces: "the model has no pieces"
            case .invalidPiece(let i, let m): "piece \(i): \(m)"
            case .unsupported(let m): m
            }
        }
    }

    /// Parses the file's bytes; `ProtobufError` for a malformed message, `Error` for an
    /// empty file or an invalid piece.
    init(bytes: [UInt8]) throws {
        guard !bytes.isEmpty else { throw Error.empty }
        var r = ProtobufReader(bytes)
        while !r.isAtEnd {
            let (field, wire) = try r.tag()
            switch field {
            case 1:
                var m = try Self.message(&r, wire, "ModelProto.pieces")
                pieces.append(try Self.piece(&m, index: pieces.count))
            case 2:
                // A message given twice is merged, as protobuf does: fields read later win.
                var m = try Self.message(&r, wire, "ModelProto.trainer_spec")
                try readTrainerSpec(&m)
            case 3:
                var m = try Self.message(&r, wire, "ModelProto.normalizer_spec")
                try readNormalizerSpec(&m)
            default:
                try r.skip(wire)
            }
        }
        guard !pieces.isEmpty else { throw Error.noPieces }
    }

    private static func piece(_ r: inout ProtobufReader, index: Int) throws -> Piece {
        var p = Piece()
        var hasText = false
        while !r.isAtEnd {
            let (field, wire) = try r.tag()
            switch field {
            case 1:
                let raw = try string(&r, wire, "SentencePiece.piece")
                guard let text = String(validating: raw, as: UTF8.self) else { throw Error.invalidPiece(index: index, "not UTF-8") }
                p.text = text
                hasText = true
            case 2:
                try expect(wire, .fixed32, "SentencePiece.score")
                p.score = Float(bitPattern: try r.fixed32())
            case 3:
                try expect(wire, .varint, "SentencePiece.type")
                p.type = Int(truncatingIfNeeded: Int32(truncatingIfNeeded: try r.varint()))
            default:
                try r.skip(wire)
            }
        }
        guard hasText, !p.text.isEmpty else { throw Error.invalidPiece(index: index, "has no text") }
        guard (1...6).contains(p.type) else {
            throw Error.invalidPiece(index: index, "type \(p.type) is not a SentencePiece type (1 normal … 6 byte)")
        }
        guard !p.score.isNaN else { throw Error.invalidPiece(index: index, "score is NaN") }
        return p
    }

    private mutating func readTrainerSpec(_ r: inout ProtobufReader) throws {
        while !r.isAtEnd {
            let (field, wire) = try r.tag()
            switch field {
            case 3: modelType = try Self.int32(&r, wire, "TrainerSpec.model_type")
            case 24: treatWhitespaceAsSuffix = try Self.bool(&r, wire, "TrainerSpec.treat_whitespace_as_suffix")
            case 35: byteFallback = try Self.bool(&r, wire, "TrainerSpec.byte_fallback")
            case 40: unkId = try Self.int32(&r, wire, "TrainerSpec.unk_id")
            case 41: bosId = try Self.int32(&r, wire, "TrainerSpec.bos_id")
            case 42: eosId = try Self.int32(&r, wire, "TrainerSpec.eos_id")
            case 43: padId = try Self.int32(&r, wire, "TrainerSpec.pad_id")
            default: try r.skip(wire)
            }
        }
    }

    private mutating func readNormalizerSpec(_ r: inout ProtobufReader) throws {
        while !r.isAtEnd {
            let (field, wire) = try r.tag()
            switch field {
            case 1: normalizerName = String(decoding: try Self.string(&r, wire, "NormalizerSpec.name"), as: UTF8.self)
            case 2: precompiledCharsmapCount = try Self.string(&r, wire, "NormalizerSpec.precompiled_charsmap").count
            case 3: addDummyPrefix = try Self.bool(&r, wire, "NormalizerSpec.add_dummy_prefix")
            case 4: removeExtraWhitespaces = try Self.bool(&r, wire, "NormalizerSpec.remove_extra_whitespaces")
            case 5: escapeWhitespaces = try Self.bool(&r, wire, "NormalizerSpec.escape_whitespaces")
            default: try r.skip(wire)
            }
        }
    }

    // MARK: typed fields

    private static func expect(_ found: ProtobufReader.WireType, _ expected: ProtobufReader.WireType, _ field: String) throws {
        guard found == expected else { throw ProtobufError.wrongWireType(field: field, expected: expected, found: found) }
    }
    private static func message(_ r: inout ProtobufReader, _ wire: ProtobufReader.WireType, _ field: String) throws -> ProtobufReader {
        try expect(wire, .lengthDelimited, field)
        return try r.message()
    }
    private static func string(_ r: inout ProtobufReader, _ wire: ProtobufReader.WireType, _ field: String) throws -> ArraySlice<UInt8> {
        try expect(wire, .lengthDelimited, field)
        return try r.lengthDelimited()
    }
    private static func bool(_ r: inout ProtobufReader, _ wire: ProtobufReader.WireType, _ field: String) throws -> Bool {
        try expect(wire, .varint, field)
        return try r.varint() != 0
    }
    /// int32 and enums: negative values are sign-extended to 10-byte varints.
    private static func int32(_ r: inout ProtobufReader, _ wire: ProtobufReader.WireType, _ field: String) throws -> Int {
        try expect(wire, .varint, field)
        return Int(Int32(truncatingIfNeeded: try r.varint()))
    }
}

// MARK: to a tokenizer

extension SentencePieceModelFile {
    /// The model for llama.cpp's SentencePiece algorithm, which on these settings gives
    /// sentencepiece's own ids: BPE, byte fallback, the identity normalizer (no
    /// precompiled rules), spaces escaped as "▁" and kept as they are, the dummy prefix as
    /// the file says. Anything else is refused with the setting named, not encoded
    /// differently. (One difference remains: UNUSED pieces, which sentencepiece splits back
    /// into the pieces they were merged from, are kept as llama.cpp keeps them; Llama's
    /// vocabulary has none.)
    func sentencePieceModel() throws -> SentencePieceModel {
        guard modelType == ModelType.bpe.rawValue else {
            let name = ModelType(rawValue: modelType).map { "\($0)" } ?? "type \(modelType)"
            throw Error.unsupported("this is a \(name) SentencePiece model; sparc reads only BPE SentencePiece models (as Llama 2's and TinyLlama's)")
        }
        guard byteFallback else {
            throw Error.unsupported("byte_fallback is off; sparc reads only SentencePiece BPE models with byte fallback (as Llama 2's)")
        }
        guard precompiledCharsmapCount == 0 else {
            let name = normalizerName.isEmpty ? "" : " \"\(normalizerName)\""
            throw Error.unsupported("the normalizer\(name) has compiled normalization rules, which sparc does not apply; only the identity normalizer (Llama 2's) is supported")
        }
        guard !removeExtraWhitespaces else {
            throw Error.unsupported("remove_extra_whitespaces is on; sparc keeps every space (as Llama 2's model asks) and cannot encode this model's way")
        }
        guard escapeWhitespaces, !treatWhitespaceAsSuffix else {
            throw Error.unsupported("spaces must become a \"▁\" prefix (escape_whitespaces on, treat_whitespace_as_suffix off)")
        }

        var seen: [ExactKey: Int] = [:]
        var types: [SentencePieceModel.TokenType] = []
        types.reserveCapacity(pieces.count)
        for (i, p) in pieces.enumerated() {
            if let j = seen.updateValue(i, forKey: ExactKey(p.text)) { throw Error.invalidPiece(index: i, "same text as piece \(j), \(p.text.debugDescription)") }
            let type = SentencePieceModel.TokenType(rawValue: p.type)!  // 1 ... 6, checked when read
            if type == .byte && ByteLevel.fallbackByte(p.text) == nil {
                throw Error.invalidPiece(index: i, "has type byte but is not of the form <0xAB>: \(p.text.debugDescription)")
            }
            types.append(type)
        }
        // sentencepiece's trainer writes all 256 byte pieces with byte_fallback; without them
        // a character outside the vocabulary would have no ids.
        let bytePieces = Set(pieces.indices.filter { types[$0] == .byte }.compactMap { ByteLevel.fallbackByte(pieces[$0].text) })
        guard bytePieces.count == 256 else {
            throw Error.unsupported("byte_fallback is on but the model has \(bytePieces.count) of the 256 byte pieces <0x00>…<0xFF>")
        }
        for (name, id) in [("unk_id", unkId), ("bos_id", bosId), ("eos_id", eosId), ("pad_id", padId)] where id >= pieces.count {
            throw Error.unsupported("TrainerSpec.\(name) = \(id) is not a piece (the model has \(pieces.count))")
        }
        // sentencepiece matches its user-defined pieces inside the normalized text, with one
        // dummy prefix for the whole text.
        return SentencePieceModel(tokens: pieces.map(\.text), scores: pieces.map(\.score), types: types,
                                  addSpacePrefix: addDummyPrefix, unkId: unkId >= 0 ? unkId : nil, padId: padId >= 0 ? padId : nil,
                                  inlineIds: Set(types.indices.filter { types[$0] == .userDefined }))
    }
}

// MARK: added tokens

extension SentencePieceModel {
    /// This model with a folder's added tokens: one with a piece's id must have that
    /// piece's text (a normal piece then becomes a token matched whole in the text, as
    /// transformers matches added tokens); the others follow the pieces, without gaps, as
    /// control (special) or user-defined tokens, the types llama.cpp's converter gives them.
    func adding(_ added: [Tokenizer.AddedToken], file: String) throws -> SentencePieceModel {
        var tokens = tokens, scores = scores, types = types
        var inline = Set(inlineIds.map(Int.init))
        for t in added.sorted(by: { $0.id < $1.id }) {
            let type: TokenType = t.special ? .control : .userDefined
            if t.id < tokens.count {
                guard tokens[t.id] == t.content else {
                    throw FormatError(file, "added token \(t.content.debugDescription) has id \(t.id), which is the piece \(tokens[t.id].debugDescription)")
                }
                if types[t.id] == .normal { types[t.id] = type }
                // transformers cuts it out of the text before sentencepiece sees the rest.
                inline.remove(t.id)
            } else {
                guard t.id == tokens.count else {
                    throw FormatError(file, "added token \(t.content.debugDescription) has id \(t.id), but the vocabulary so far ends at \(tokens.count - 1): added tokens must follow it without gaps")
                }
                if let other = vocab[ExactKey(t.content)] {
                    throw FormatError(file, "added token \(t.content.debugDescription) (id \(t.id)) is already the piece \(other)")
                }
                tokens.append(t.content)
                scores.append(0)
                types.append(type)
            }
        }
        return SentencePieceModel(tokens: tokens, scores: scores, types: types, addSpacePrefix: addSpacePrefix,
                                  unkId: unkId.map(Int.init), padId: padId.map(Int.init), rstripSpecials: rstripIds,
                                  inlineIds: inline)
    }
}
