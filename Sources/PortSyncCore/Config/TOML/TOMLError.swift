/// Why a text is not accepted as TOML, and where.
public struct TOMLError: Error, Sendable, Hashable, CustomStringConvertible {
    public enum Kind: Sendable, Hashable {
        /// Not TOML 1.0 (syntax, a key or table defined twice, an integer beyond 64 bits, nesting too deep).
        case syntax
        /// Valid TOML refused by `TOMLParser.Options.allowsNUL`: a string or key holding U+0000.
        case nulCharacter
    }

    public var kind: Kind
    public var position: TOMLPosition
    /// For syntax errors, "Error while parsing <what>: <detail>".
    public var message: String

    public init(_ kind: Kind = .syntax, at position: TOMLPosition, _ message: String) {
        self.kind = kind
        self.position = position
        self.message = message
    }

    public var line: Int { self.position.line }
    public var column: Int { self.position.column }

    /// `line:col: message`.
    public var description: String { "\(self.position): \(self.message)" }
}
