import Foundation
import Testing
@testable import SparcWorkflows

/// Inputs that hung the workflow helpers: each must now finish promptly.
@Suite struct HangTests {
    @Test func chartTicksStopAtFloatResolution() {
        // Near 1e16 the doubles are 2 apart: a tick step of 0.5 never advances.
        let ticks = Charts.ticks(1e16, 1e16 + 4, log: false)
        #expect(ticks.count <= 3 && !ticks.isEmpty)
        #expect(Charts.ticks(0, 1, log: false).map(\.1) == ["0", "0.2", "0.4", "0.6", "0.8", "1"])
        #expect(Charts.ticks(-1e308, 1e308, log: false).count <= 51)
        #expect(Charts.ticks(.nan, 1, log: false).isEmpty)
        let svg = Charts.lines([.init(name: "flat", points: [(1e16, 1), (1e16 + 2, 1)])], title: "t", xLabel: "x", yLabel: "y")
        #expect(svg.hasSuffix("</svg>\n"))
        let huge = Charts.lines([.init(name: "h", points: [(1e300, 1), (1e300, 2)])], title: "t", xLabel: "x", yLabel: "y")
        #expect(huge.hasSuffix("</svg>\n"))
    }

    @Test func scorerThatFloodsStderrDoesNotDeadlock() throws {
        // 200 KB on stderr before any answer: stderr's pipe fills while stdout is read.
        let scorer = CommandScorer(command: "head -c 200000 /dev/zero | tr '\\0' x >&2; awk '{ print 0.5 }'", timeout: 60)
        #expect(try scorer.scores(["a", "b"]) == [0.5, 0.5])
        // A failing scorer reports the end of what it wrote to stderr.
        let failing = CommandScorer(command: "head -c 200000 /dev/zero | tr '\\0' x >&2; echo 'the model is missing' >&2; exit 3", timeout: 60)
        do { _ = try failing.scores(["a"]); Issue.record("no error") } catch {
            #expect("\(error)".contains("failed with status 3"))
            #expect("\(error)".hasSuffix("the model is missing"))
            #expect("\(error)".count < 70_000)
        }
    }

    @Test func scorerThatNeverAnswersTimesOut() throws {
        let started = Date()
        do { _ = try CommandScorer(command: "sleep 30", timeout: 1).scores(["a"]); Issue.record("no error") } catch {
            #expect("\(error)" == "the scorer `sleep 30` did not finish within 1 s; stopped it")
        }
        #expect(Date().timeIntervalSince(started) < 10)
    }
}
