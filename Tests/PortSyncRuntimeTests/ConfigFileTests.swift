import Foundation
import PortSyncCore
import Testing

@testable import PortSyncRuntime

/// `http.bearer_token_file`: the token is read from the file when the configuration is loaded (start and reload),
/// and a missing, unreadable or malformed file is an error that never quotes the file's content.
@Suite("ConfigFile: bearer token file")
struct ConfigFileTests {
    /// A fresh directory with `portsyncd.toml` holding `config`; its path.
    static func write(_ config: String, token: String?) throws -> (config: String, token: String) {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("psd-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let tokenPath = directory.appendingPathComponent("token").path
        if let token { try Data(token.utf8).write(to: URL(fileURLWithPath: tokenPath)) }
        let configPath = directory.appendingPathComponent("portsyncd.toml").path
        try Data(config.replacingOccurrences(of: "TOKEN", with: tokenPath).utf8)
            .write(to: URL(fileURLWithPath: configPath))
        return (configPath, tokenPath)
    }

    @Test("The file's token, a final newline dropped, becomes http.bearer_token")
    func readsToken() throws {
        let paths = try Self.write("[http]\nbearer_token_file = \"TOKEN\"\n", token: "s3cret-42\n")
        let config = try #require(try ConfigFile.load(paths.config, missingMeansDefaults: false))
        #expect(config.http.bearerToken == "s3cret-42")
        #expect(config.http.bearerTokenFile == paths.token)
    }

    @Test("Missing, empty, spaced or both keys set: an error naming the key, never the content")
    func refusals() throws {
        for (text, token) in [
            ("[http]\nbearer_token_file = \"TOKEN\"\n", nil as String?),
            ("[http]\nbearer_token_file = \"TOKEN\"\n", "\n"),
            ("[http]\nbearer_token_file = \"TOKEN\"\n", "top secret\n"),
            ("[http]\nbearer_token_file = \"TOKEN\"\n", String(repeating: "x", count: 257)),
            ("[http]\nbearer_token = \"a\"\nbearer_token_file = \"TOKEN\"\n", "b"),
        ] {
            let paths = try Self.write(text, token: token)
            do throws(ConfigError) {
                _ = try ConfigFile.load(paths.config, missingMeansDefaults: false)
                Issue.record("accepted \(text) with \(token ?? "no file")")
            } catch {
                #expect(error.message.contains("bearer_token_file"), "\(error)")
                #expect(!error.description.contains("secret"), "\(error)")
            }
        }
    }
}
