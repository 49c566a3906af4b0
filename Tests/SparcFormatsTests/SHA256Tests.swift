import Foundation
import Testing
import SparcFormats

@Suite struct SHA256Tests {
    func digest(_ bytes: [UInt8]) -> String {
        var s = SHA256()
        s.update(bytes)
        return s.finalize()
    }

    @Test func knownVectors() {
        // FIPS 180-4 examples.
        #expect(digest([]) == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
        #expect(digest(Array("abc".utf8)) == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        #expect(digest(Array("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq".utf8))
                == "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1")
        #expect(digest([UInt8](repeating: 0x61, count: 1_000_000)) == "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0")
    }

    @Test func chunkedUpdatesEqualOneShot() {
        var rng = SystemRandomNumberGenerator()
        let bytes = (0..<1000).map { _ in UInt8.random(in: 0...255, using: &rng) }
        for _ in 0..<20 {
            var s = SHA256()
            var i = 0
            while i < bytes.count {
                let n = min(Int.random(in: 0...130, using: &rng), bytes.count - i)
                s.update(bytes[i..<(i + n)])
                i += n
            }
            #expect(s.finalize() == digest(bytes))
        }
    }

    @Test func fileDigestIsWhatSha256sumPrints() throws {
        let path = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
            .appendingPathComponent("../SparcModelTests/Fixtures/tiny-gqa.gguf").standardized.path
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        p.arguments = ["sha256sum", path]
        let out = Pipe()
        p.standardOutput = out
        try p.run()
        let text = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        p.waitUntilExit()
        #expect(try SHA256.hex(ofFiles: [path]) == String(text.prefix(64)))
    }
}
