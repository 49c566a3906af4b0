import Foundation
import SparcCluster

/// A one-line progress bar on stderr, drawn only when stderr is a terminal.
final class ProgressBar {
    private let label: String
    private let total: Int
    /// On a terminal, and on rank 0 only under `mpirun`.
    private let enabled = isatty(STDERR_FILENO) == 1 && World.current.isRoot
    private let start = Date()
    private var lastDraw = Date.distantPast

    init(_ label: String, total: Int) {
        self.label = label
        self.total = max(total, 1)
    }

    func update(_ done: Int) {
        guard enabled else { return }
        let now = Date()
        guard done >= total || now.timeIntervalSince(lastDraw) > 0.1 else { return }
        lastDraw = now
        let width = 30, filled = min(width, width * done / total)
        let bar = String(repeating: "█", count: filled) + String(repeating: "·", count: width - filled)
        let line = String(format: "\r%@ %@ %d/%d  %.1fs", label, bar, done, total, now.timeIntervalSince(start))
        FileHandle.standardError.write(line.data(using: .utf8)!)
    }

    /// Clears the line.
    func finish() {
        guard enabled else { return }
        FileHandle.standardError.write("\r\u{1B}[2K".data(using: .utf8)!)
    }
}
