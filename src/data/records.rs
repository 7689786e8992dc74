//! The streaming CSV record reader under the loaders: csv-core over any `Read`, with exact
//! line numbers (CRLF and blank lines count as an editor shows them), a leading UTF-8 BOM
//! dropped, and caps on one record's size, its field count and the bytes an input may supply;
//! and the hand-off of whole records, in large blocks, to the parallel parser (`chunks`).

use std::io::{ErrorKind, Read};

use csv_core::ReadRecordResult;

use crate::error::{Error, Result};
use crate::memory;

/// The most bytes one record (a line, or the lines of a quoted field) may span.
pub const MAX_RECORD_BYTES: usize = 64 << 20;
/// The most fields one record may hold.
pub const MAX_FIELDS: usize = 1 << 20;

/// Bytes asked of the input per read.
const CHUNK: usize = 64 << 10;

/// Records of one input, read one at a time; memory stays that of the largest record.
pub struct Records<'n, R> {
    name: &'n str,
    src: R,
    buf: Vec<u8>,
    /// `buf[start..end]` is read but not yet parsed.
    start: usize,
    end: usize,
    eof: bool,
    /// The BOM check has run.
    began: bool,
    done: bool,
    core: csv_core::Reader,
    /// The current record's field bytes and the end of each field in them.
    out: Vec<u8>,
    ends: Vec<usize>,
    fields: usize,
    /// `\n` bytes parsed so far.
    newlines: u64,
    /// A byte other than ASCII whitespace was parsed (a BOM does not count).
    content: bool,
    /// Bytes read from the input, and the most it may supply.
    read: u64,
    max_input: Option<u64>,
    max_record: usize,
    delimiter: u8,
    /// Where the bytes parsed so far leave the current field, as csv-core quotes.
    quote: Quote,
    /// The line of the quote that opened the current quoted field.
    quote_line: Option<u64>,
    /// A read that failed while `unparsed` read ahead, reported by the next `fill`, after
    /// the bytes read before it, as if read one chunk at a time.
    pending: Option<std::io::Error>,
}

/// A field's quoting, byte by byte, as csv-core reads it (quotes doubled inside quotes).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Quote {
    /// At the start of a field.
    FieldStart,
    /// In a field that did not start with a quote, or after a quoted part.
    Plain,
    /// Inside quotes.
    Open,
    /// A quote inside quotes: it closes them, unless another quote follows.
    MaybeClosed,
}

impl Quote {
    fn next(self, b: u8, delimiter: u8) -> Quote {
        let ends_field = b == delimiter || b == b'\n' || b == b'\r';
        match (self, b) {
            (Quote::Open, b'"') => Quote::MaybeClosed,
            (Quote::Open, _) => Quote::Open,
            (Quote::MaybeClosed, b'"') => Quote::Open,
            (Quote::FieldStart, b'"') => Quote::Open,
            _ if ends_field => Quote::FieldStart,
            _ => Quote::Plain,
        }
    }
}

impl<'n, R: Read> Records<'n, R> {
    /// `max_input`: the most bytes the input may supply (`None`: no cap). `max_record`: the
    /// most bytes one record may span.
    pub fn new(
        name: &'n str,
        src: R,
        delimiter: u8,
        max_input: Option<u64>,
        max_record: usize,
    ) -> Self {
        let core = csv_core::ReaderBuilder::new().delimiter(delimiter).build();
        Records {
            name,
            src,
            buf: vec![0; CHUNK],
            start: 0,
            end: 0,
            eof: false,
            began: false,
            done: false,
            core,
            out: vec![0; 4096],
            ends: vec![0; 64],
            fields: 0,
            newlines: 0,
            content: false,
            read: 0,
            max_input,
            max_record,
            delimiter,
            quote: Quote::FieldStart,
            quote_line: None,
            pending: None,
        }
    }

    /// The input not yet parsed, read on (when the input is uncapped) until it holds `min`
    /// bytes or ends, and whether the input ended there. For a parser of whole records that
    /// hands the bytes it took back with `skip`; nothing before the first record is offered.
    pub fn unparsed(&mut self, min: usize) -> (&[u8], bool) {
        if !self.began || self.done {
            return (&[], true);
        }
        if self.max_input.is_none() && self.pending.is_none() && self.end - self.start < min {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
            if self.buf.len() < min {
                self.buf.resize(min, 0);
            }
            while self.end < min && !self.eof {
                match self.src.read(&mut self.buf[self.end..]) {
                    Ok(0) => self.eof = true,
                    Ok(n) => {
                        self.end += n;
                        self.read += n as u64;
                    }
                    Err(e) if e.kind() == ErrorKind::Interrupted => {}
                    Err(e) => {
                        self.pending = Some(e);
                        break;
                    }
                }
            }
        }
        let ended = self.eof && self.pending.is_none();
        (&self.buf[self.start..self.end], ended)
    }

    /// Marks the first `n` bytes of `unparsed` as parsed: whole records, each with its line
    /// break, holding `newlines` `\n` bytes in all.
    pub fn skip(&mut self, n: usize, newlines: u64) {
        if n > 0 {
            debug_assert!(self.quote == Quote::FieldStart && n <= self.end - self.start);
            self.start += n;
            self.newlines += newlines;
            self.core.reset();
        }
    }

    /// Whether anything but ASCII whitespace (and a leading BOM) has been read.
    pub fn content_seen(&self) -> bool {
        self.content
    }

    /// Fields of the current record.
    pub fn len(&self) -> usize {
        self.fields
    }

    /// Field `i` of the current record, as in the file (quotes removed, not trimmed).
    pub fn field(&self, i: usize) -> &[u8] {
        let from = if i == 0 { 0 } else { self.ends[i - 1] };
        &self.out[from..self.ends[i]]
    }

    fn error(&self, line: Option<u64>, msg: String) -> Error {
        Error::Data {
            path: self.name.to_string(),
            line,
            column: None,
            msg,
        }
    }

    /// Reads more input after what is buffered, at least one byte unless at the end.
    fn fill(&mut self) -> Result<()> {
        if self.start > 0 {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        if let Some(e) = self.pending.take() {
            let line = (self.read > 0).then_some(self.newlines + 1);
            return Err(self.error(line, format!("reading failed: {e}")));
        }
        if self.end == self.buf.len() {
            // `unparsed` left the buffer full.
            self.buf.resize(self.buf.len() + CHUNK, 0);
        }
        loop {
            match self.src.read(&mut self.buf[self.end..]) {
                Ok(0) => {
                    self.eof = true;
                    return Ok(());
                }
                Ok(n) => {
                    self.end += n;
                    self.read += n as u64;
                    if let Some(max) = self.max_input.filter(|&m| self.read > m) {
                        return Err(self.error(
                            Some(self.newlines + 1),
                            format!(
                                "more than {} read from this input, which is not a regular file; \
                                 the cap is {} (save the data to a file to read more)",
                                memory::fmt_bytes(max),
                                memory::limit().describe()
                            ),
                        ));
                    }
                    return Ok(());
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) => {
                    let line = (self.read > 0).then_some(self.newlines + 1);
                    return Err(self.error(line, format!("reading failed: {e}")));
                }
            }
        }
    }

    /// Reads the next record; returns its line (of its first byte), or `None` at the end.
    /// Blank lines are skipped.
    pub fn next_record(&mut self) -> Result<Option<u64>> {
        if self.done {
            return Ok(None);
        }
        if !self.began {
            self.began = true;
            while self.end < 3 && !self.eof {
                self.fill()?;
            }
            if self.buf[..self.end].starts_with(b"\xEF\xBB\xBF") {
                while self.end < 6 && !self.eof {
                    self.fill()?;
                }
                self.start = 3;
                if self.buf[3..self.end].starts_with(b"\xEF\xBB\xBF") {
                    return Err(self.error(
                        Some(1),
                        "the file starts with two byte order marks (U+FEFF U+FEFF); save it \
                         as UTF-8 with at most one"
                            .into(),
                    ));
                }
            } else if let Some(&[a, b]) = self.buf.get(..2).filter(|_| self.end >= 2)
                && ((a, b) == (0xFF, 0xFE) || (a, b) == (0xFE, 0xFF))
            {
                let order = if a == 0xFF { "LE" } else { "BE" };
                return Err(self.error(
                    Some(1),
                    format!(
                        "the file is UTF-16 (it starts with a UTF-16{order} byte order mark); \
                         save it as UTF-8 (\"CSV UTF-8\")"
                    ),
                ));
            }
        }
        let (mut outlen, mut nends) = (0usize, 0usize);
        let mut line: Option<u64> = None;
        let mut bytes = 0usize;
        loop {
            if self.start == self.end && !self.eof {
                self.fill()?;
            }
            let input = &self.buf[self.start..self.end];
            let (res, nin, nout, nend) =
                self.core
                    .read_record(input, &mut self.out[outlen..], &mut self.ends[nends..]);
            let mut used = &input[..nin];
            if line.is_none() {
                // Line breaks before the record: the rest of the last one's, or blank lines.
                let skip = used
                    .iter()
                    .take_while(|b| matches!(b, b'\r' | b'\n'))
                    .count();
                self.newlines += used[..skip].iter().filter(|&&b| b == b'\n').count() as u64;
                used = &used[skip..];
                if !used.is_empty() {
                    line = Some(self.newlines + 1);
                }
            }
            for &b in used {
                let was = self.quote;
                self.quote = was.next(b, self.delimiter);
                if was == Quote::FieldStart && self.quote == Quote::Open {
                    self.quote_line = Some(self.newlines + 1);
                }
                if b == b'\n' {
                    self.newlines += 1;
                }
            }
            if !self.content {
                self.content = used.iter().any(|b| !b.is_ascii_whitespace());
            }
            bytes += used.len();
            self.start += nin;
            outlen += nout;
            nends += nend;
            if bytes > self.max_record {
                return Err(self.error(
                    line,
                    format!(
                        "a record longer than {} (is this a text CSV file?)",
                        memory::fmt_bytes(self.max_record as u64)
                    ),
                ));
            }
            match res {
                ReadRecordResult::InputEmpty if nin == 0 && self.eof => {
                    // Not expected from csv-core at the end; stop rather than spin.
                    self.done = true;
                    return Ok(None);
                }
                ReadRecordResult::InputEmpty => {}
                ReadRecordResult::OutputFull => {
                    // The output never outgrows the input, which `max_record` bounds.
                    let grown = (self.out.len() * 2).min(self.max_record + CHUNK);
                    if grown <= self.out.len() {
                        return Err(self.error(
                            line,
                            format!(
                                "a record longer than {}",
                                memory::fmt_bytes(self.max_record as u64)
                            ),
                        ));
                    }
                    self.out.resize(grown, 0);
                }
                ReadRecordResult::OutputEndsFull => {
                    if self.ends.len() >= MAX_FIELDS {
                        return Err(self.error(
                            line,
                            format!(
                                "more than {} fields in one record",
                                memory::fmt_count(MAX_FIELDS as u64)
                            ),
                        ));
                    }
                    let grown = (self.ends.len() * 2).min(MAX_FIELDS);
                    self.ends.resize(grown, 0);
                }
                ReadRecordResult::Record => {
                    if self.quote == Quote::Open {
                        let opened = self.quote_line.unwrap_or(self.newlines + 1);
                        return Err(self.error(
                            Some(opened),
                            format!(
                                "the quote that opens a field on line {opened} never closes: \
                                 the file ends inside it"
                            ),
                        ));
                    }
                    self.quote = Quote::FieldStart;
                    self.fields = nends;
                    return Ok(Some(line.unwrap_or(self.newlines + 1)));
                }
                ReadRecordResult::End => {
                    self.done = true;
                    self.fields = 0;
                    return Ok(None);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// (line, fields) of every record, read in pieces of `step` bytes.
    fn all(text: &[u8], step: usize) -> Result<Vec<(u64, Vec<String>)>> {
        struct Trickle<'a>(&'a [u8], usize);
        impl Read for Trickle<'_> {
            fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
                let n = self.0.len().min(self.1).min(buf.len());
                buf[..n].copy_from_slice(&self.0[..n]);
                self.0 = &self.0[n..];
                Ok(n)
            }
        }
        let mut r = Records::new("t.csv", Trickle(text, step), b',', None, 64);
        let mut v = Vec::new();
        while let Some(line) = r.next_record()? {
            let f = (0..r.len())
                .map(|i| String::from_utf8_lossy(r.field(i)).into_owned())
                .collect();
            v.push((line, f));
        }
        Ok(v)
    }

    #[test]
    fn lines_count_crlf_blank_lines_and_quoted_breaks() {
        let text = b"\xEF\xBB\xBFa,b\r\n1,2\r\n\r\n\n\"x\ny\",3\n4,5";
        for step in [1, 2, 3, 7, 1000] {
            let v = all(text, step).unwrap();
            let lines: Vec<u64> = v.iter().map(|r| r.0).collect();
            assert_eq!(lines, vec![1, 2, 5, 7], "step {step}");
            assert_eq!(v[0].1, vec!["a", "b"], "the BOM is dropped (step {step})");
            let e = all(b"\xEF\xBB\xBF\xEF\xBB\xBFa,b\n1,2\n", step)
                .unwrap_err()
                .to_string();
            assert!(
                e.starts_with("t.csv, line 1: the file starts with two byte order marks"),
                "{e}"
            );
            assert_eq!(v[2].1, vec!["x\ny", "3"]);
        }
    }

    #[test]
    fn a_long_record_or_input_is_an_error_naming_the_line() {
        let mut text = b"a,b\n1,2\n".to_vec();
        text.extend(std::iter::repeat_n(b'0', 100));
        let e = all(&text, 5).unwrap_err().to_string();
        assert!(
            e.starts_with("t.csv, line 3: a record longer than 64 B"),
            "{e}"
        );
        let mut r = Records::new("p", &b"a,b\n1,2\n3,4\n"[..], b',', Some(6), 1 << 10);
        let e = loop {
            match r.next_record() {
                Ok(Some(_)) => {}
                Ok(None) => panic!("the cap was not applied"),
                Err(e) => break e.to_string(),
            }
        };
        assert!(e.contains("more than 6 B read from this input"), "{e}");
        let commas = vec![b','; MAX_FIELDS + 1];
        let mut r = Records::new("w.csv", &commas[..], b',', None, MAX_RECORD_BYTES);
        let e = r.next_record().unwrap_err().to_string();
        assert!(
            e.starts_with("w.csv, line 1: more than 1,048,576 fields"),
            "{e}"
        );
    }

    #[test]
    fn a_utf16_file_and_an_unclosed_quote_are_named() {
        for text in [&b"\xFF\xFEa\0,\0y\0"[..], b"\xFE\xFF\0a\0,\0y"] {
            let e = all(text, 1).unwrap_err().to_string();
            assert!(
                e.starts_with("t.csv, line 1: the file is UTF-16")
                    && e.contains("save it as UTF-8"),
                "{e}"
            );
        }
        for step in [1, 3, 1000] {
            let e = all(b"a,y\n\"1,0\n2,1\n", step).unwrap_err().to_string();
            assert_eq!(
                e,
                "t.csv, line 2: the quote that opens a field on line 2 never closes: the file ends inside it"
            );
            let e = all(b"a,y\n1,2\n\n3,\"x\"\"\n", step)
                .unwrap_err()
                .to_string();
            assert!(
                e.starts_with("t.csv, line 4: the quote that opens a field on line 4"),
                "{e}"
            );
        }
        // Closed quotes, doubled quotes and quotes inside a plain field are fine at the end.
        for text in [&b"a,y\n\"x\"\"y\",1"[..], b"a,y\n5\",1", b"a,y\n\"x\"z\"\n"] {
            assert!(all(text, 2).is_ok(), "{text:?}");
        }
    }

    #[test]
    fn content_is_anything_but_whitespace_after_the_bom() {
        for (text, content) in [
            (&b"\xEF\xBB\xBF"[..], false),
            (b"\xEF\xBB\xBF \r\n\t\n", false),
            (b"", false),
            (b"\xEF\xBB", true),
            (b" \n x", true),
        ] {
            let mut r = Records::new("t", text, b',', None, 64);
            while r.next_record().unwrap().is_some() {}
            assert_eq!(r.content_seen(), content, "{text:?}");
        }
    }
}
