import Hub
import XCTest

/// A connection's session code from the URL packed in a word (issue 30: memory per connection): what
/// fits reads back the same, what does not is left to the side object.
final class SessionCodeWordTests: XCTestCase {
    func testCodesOfUpTo8ASCIIBytesReadBackTheSame() {
        for code in ["ABCDEF", "ABCDEFGH", "A2B3C4D5", "Z", "abcdefgh"] {
            let word = SessionCodeWord.word(code)
            XCTAssertNotNil(word, code)
            XCTAssertNotEqual(word, 0)
            XCTAssertEqual(word.map(SessionCodeWord.text), code)
        }
        XCTAssertNotEqual(SessionCodeWord.word("ABCDEFGH"), SessionCodeWord.word("ABCDEFGJ"))
    }

    func testWhatDoesNotFitIsNotPacked() {
        for code in ["", "ABCDEFGHJ", String(repeating: "A", count: 32), "ABC\u{0}D", "ÄBCDEF"] {
            XCTAssertNil(SessionCodeWord.word(code), code)
        }
    }
}
