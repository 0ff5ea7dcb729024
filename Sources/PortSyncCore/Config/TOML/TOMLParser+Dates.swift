extension TOMLParser {
    /// An offset or local date-time, a local date or a local time, if one starts here (at a digit). Text shaped
    /// like one (`DDDD-DD-DD`, `DD:`) but out of range is an error here, where a better message can be given
    /// than the one the rest of the line would get.
    mutating func dateTime() throws(TOMLError) -> TOMLDateTime? {
        let start = self.offset
        if let date = try self.date(at: start) {
            self.offset += 10
            guard let separator = self.peek() else { return TOMLDateTime(date: date, time: nil) }
            let isT = separator == UInt8(ascii: "T") || separator == UInt8(ascii: "t")
            // After a space, a time follows only if it looks like one: `1979-05-27 # comment` is a date.
            guard isT || (separator == TOMLSyntax.space && self.looksLikeTime(at: self.offset + 1)) else {
                return TOMLDateTime(date: date, time: nil)
            }
            self.offset += 1
            guard let time = try self.time() else {
                throw self.error("date-time", "expected a time (HH:MM:SS) after the date, saw \(self.saw())")
            }
            return TOMLDateTime(date: date, time: time, offsetMinutes: try self.timeOffset())
        }
        if let time = try self.time() { return TOMLDateTime(date: nil, time: time) }
        return nil
    }

    /// `YYYY-MM-DD` at `index`: nil if the text is not shaped so, an error if it is but is no date.
    private mutating func date(at index: Int) throws(TOMLError) -> TOMLDateTime.Date? {
        guard let year = self.decimal(at: index, count: 4), self.byte(at: index + 4) == TOMLSyntax.minus,
            let month = self.decimal(at: index + 5, count: 2), self.byte(at: index + 7) == TOMLSyntax.minus,
            let day = self.decimal(at: index + 8, count: 2)
        else { return nil }
        guard (1...12).contains(month) else {
            throw self.error("date", "month \(month) is not 01 to 12", at: index + 5)
        }
        let leap = year % 4 == 0 && (year % 100 != 0 || year % 400 == 0)
        let days = [31, leap ? 29 : 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31][month - 1]
        guard (1...days).contains(day) else {
            throw self.error("date", "day \(day) is not 01 to \(days) in month \(month) of \(year)", at: index + 8)
        }
        return TOMLDateTime.Date(year: year, month: month, day: day)
    }

    /// Whether a time starts at `index`: two digits and a colon.
    private func looksLikeTime(at index: Int) -> Bool {
        self.decimal(at: index, count: 2) != nil && self.byte(at: index + 2) == TOMLSyntax.colon
    }

    /// `HH:MM:SS` with an optional fraction, here: nil if no time starts here, an error if one does but is wrong.
    private mutating func time() throws(TOMLError) -> TOMLDateTime.Time? {
        let start = self.offset
        guard self.looksLikeTime(at: start) else { return nil }
        guard let hour = self.decimal(at: start, count: 2), let minute = self.decimal(at: start + 3, count: 2),
            self.byte(at: start + 5) == TOMLSyntax.colon, let second = self.decimal(at: start + 6, count: 2)
        else { throw self.error("time", "expected a time as HH:MM:SS (with seconds)", at: start) }
        for (value, name, limit, at) in [(hour, "hour", 23, start), (minute, "minute", 59, start + 3)]
        where value > limit {
            throw self.error("time", "\(name) \(value) is not 00 to \(limit)", at: at)
        }
        guard second < 60 else {
            throw self.error("time", "second \(second) is not 00 to 59 (leap seconds are not supported)", at: start + 6)
        }
        self.offset += 8
        var nanosecond = 0
        if self.peek() == TOMLSyntax.dot {
            self.offset += 1
            guard let first = self.peek(), TOMLSyntax.isDigit(first) else {
                throw self.error("time", "expected the digits of a fraction of a second after '.', saw \(self.saw())")
            }
            var digits = 0
            while let byte = self.peek(), let digit = TOMLSyntax.digitValue(byte, radix: 10) {
                // Beyond nanoseconds the digits are dropped: TOML says to truncate, not round.
                if digits < 9 { nanosecond = nanosecond * 10 + digit }
                digits += 1
                self.offset += 1
            }
            for _ in min(digits, 9)..<9 { nanosecond *= 10 }
        }
        return TOMLDateTime.Time(hour: hour, minute: minute, second: second, nanosecond: nanosecond)
    }

    /// `Z`, `z` or `±HH:MM`, in minutes east of UTC; nil (nothing read) for a local date-time.
    private mutating func timeOffset() throws(TOMLError) -> Int? {
        guard let byte = self.peek() else { return nil }
        if byte == UInt8(ascii: "Z") || byte == UInt8(ascii: "z") {
            self.offset += 1
            return 0
        }
        guard byte == TOMLSyntax.plus || byte == TOMLSyntax.minus else { return nil }
        guard let hours = self.decimal(at: self.offset + 1, count: 2),
            self.byte(at: self.offset + 3) == TOMLSyntax.colon,
            let minutes = self.decimal(at: self.offset + 4, count: 2)
        else { throw self.error("date-time", "expected an offset as +HH:MM or -HH:MM") }
        guard hours < 24, minutes < 60 else {
            throw self.error("date-time", "an offset must be -23:59 to +23:59")
        }
        self.offset += 6
        return (byte == TOMLSyntax.minus ? -1 : 1) * (hours * 60 + minutes)
    }

    private func byte(at index: Int) -> UInt8? {
        index < self.bytes.count ? self.bytes[index] : nil
    }

    /// `count` decimal digits at `index`, as a number.
    private func decimal(at index: Int, count: Int) -> Int? {
        var value = 0
        for position in index..<(index + count) {
            guard let byte = self.byte(at: position), let digit = TOMLSyntax.digitValue(byte, radix: 10) else {
                return nil
            }
            value = value * 10 + digit
        }
        return value
    }
}
