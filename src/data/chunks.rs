//! The parallel path of the CSV loaders: the rows after the header, read in blocks of a few
//! MiB, split at line breaks into chunks that all cores parse at once (fields split and
//! trimmed, features read by a correctly rounded parser, label classes found per chunk and
//! merged in file order). It takes only rows that it reads exactly as the sequential loop of
//! `csv` would: at a quote, invalid UTF-8, a bad cell or label, a wrong field count, an
//! over-long record or the memory cap it stops before the chunk holding it, and the
//! sequential reader goes on from there, so every error keeps its file, line and column.

use std::collections::HashMap;
use std::io::Read;
use std::ops::Range;
use std::sync::atomic::{AtomicBool, Ordering};

use rayon::prelude::*;

use super::csv::{LabelSink, fixed_class, reserve_row};
use super::records::Records;
use crate::memory;
use crate::model::MAX_CLASSES;

/// Bytes of input parsed per round (the last record's rest waits for the next).
const BLOCK: usize = 8 << 20;
/// The smallest chunk one task parses.
const MIN_CHUNK: usize = 64 << 10;

/// What the rows hold and where their values go.
pub(super) struct Plan<'a> {
    pub delimiter: u8,
    /// Fields per record (the header's).
    pub fields: usize,
    /// The feature columns, in the order their values are kept.
    pub features: &'a [usize],
    pub label: Option<usize>,
    /// The most bytes one record may span.
    pub max_record: usize,
    /// The rows kept may take this many bytes, at `row_bytes` a row.
    pub budget: u64,
    pub row_bytes: Option<u64>,
    /// The most elements `x` may grow to.
    pub max_x: usize,
}

/// The rows read so far, shared with the sequential loop.
pub(super) struct Rows<'s, 'm> {
    pub x: &'s mut Vec<f32>,
    pub rows: &'s mut usize,
    pub sink: &'s mut LabelSink<'m>,
}

/// One chunk's rows, to be taken in file order; the buffers serve chunk after chunk.
#[derive(Default)]
struct Chunk {
    /// All its records read.
    ok: bool,
    x: Vec<f32>,
    rows: usize,
    newlines: u64,
    /// Learned labels: where in the chunk the distinct texts are, in order of first
    /// appearance, and per row its index in them.
    texts: Vec<Range<usize>>,
    of_row: Vec<u32>,
    /// Labels of a known mapping: per row its class.
    y: Vec<f32>,
}

impl Chunk {
    fn clear(&mut self) {
        self.ok = false;
        self.x.clear();
        self.rows = 0;
        self.newlines = 0;
        self.texts.clear();
        self.of_row.clear();
        self.y.clear();
    }
}

/// Which labels a chunk collects.
#[derive(Clone, Copy)]
enum Want<'m> {
    Learn,
    Fixed(&'m super::LabelMapping, &'m [Option<super::label::Decimal>]),
    Absent,
}

/// Parses the rows after the header of an uncapped input (a regular file or bytes) for as
/// long as they read exactly as the sequential loop would read them; the rows taken are
/// added to `out` and marked parsed in `recs`, where the sequential loop goes on.
pub(super) fn run<R: Read>(recs: &mut Records<'_, R>, plan: &Plan, mut out: Rows) {
    let threads = rayon::current_num_threads().max(1);
    let Some(roles) = roles(plan) else {
        return;
    };
    let (block, chunk) = sizes();
    let mut pool: Vec<Chunk> = Vec::new();
    loop {
        let (avail, ended) = recs.unparsed(block);
        let ended = ended && avail.len() <= block;
        let avail = &avail[..avail.len().min(block)];
        if avail.is_empty() {
            return;
        }
        let cut = if ended {
            avail.len()
        } else {
            match avail.iter().rposition(|&b| b == b'\n') {
                Some(p) => p + 1,
                // One record longer than a block: the sequential reader's.
                None => return,
            }
        };
        let part = &avail[..cut];
        let ranges = split(part, chunk.unwrap_or((cut / (4 * threads)).max(MIN_CHUNK)));
        let want = match &*out.sink {
            LabelSink::Learn(_) => Want::Learn,
            LabelSink::Fixed {
                mapping, values, ..
            } => Want::Fixed(mapping, values),
            LabelSink::Absent => Want::Absent,
        };
        let stop = AtomicBool::new(false);
        pool.resize_with(ranges.len(), Chunk::default);
        pool.par_iter_mut().zip(&ranges).for_each(|(c, r)| {
            c.clear();
            if !stop.load(Ordering::Relaxed) {
                c.ok = parse_chunk(c, plan, &roles, want, &part[r.clone()]).is_some();
            }
            if !c.ok {
                stop.store(true, Ordering::Relaxed);
            }
        });
        let (mut taken, mut newlines) = (0, 0);
        for (c, r) in pool.iter().zip(&ranges) {
            if !c.ok || !take(plan, &mut out, c, &part[r.clone()]) {
                break;
            }
            taken = r.end;
            newlines += c.newlines;
        }
        recs.skip(taken, newlines);
        if taken < cut {
            return;
        }
    }
}

/// Adds a chunk's rows (read from `bytes`) to `out`; false, with `out` as it was, where the
/// sequential loop must read them (the memory cap, more classes than a model may have).
fn take(plan: &Plan, out: &mut Rows, c: &Chunk, bytes: &[u8]) -> bool {
    let kept = plan
        .row_bytes
        .and_then(|b| memory::mul(out.rows.checked_add(c.rows)?, b));
    if kept.is_none_or(|k| k > plan.budget) || !reserve_row(out.x, c.x.len(), plan.max_x) {
        return false;
    }
    match &mut *out.sink {
        LabelSink::Learn(learned) => {
            let texts: Option<Vec<&str>> = c
                .texts
                .iter()
                .map(|r| std::str::from_utf8(&bytes[r.clone()]).ok())
                .collect();
            if !texts.is_some_and(|t| learned.add_run(&t, &c.of_row)) {
                return false;
            }
        }
        LabelSink::Fixed { y, .. } => y.extend_from_slice(&c.y),
        LabelSink::Absent => {}
    }
    out.x.extend_from_slice(&c.x);
    *out.rows += c.rows;
    true
}

/// Splits `part` into ranges of about `size` bytes, each ending after a `\n` (the last at
/// the end of `part`).
fn split(part: &[u8], size: usize) -> Vec<Range<usize>> {
    let mut ranges = Vec::new();
    let mut start = 0;
    while start < part.len() {
        let at = (start + size).min(part.len());
        let end = match part[at..].iter().position(|&b| b == b'\n') {
            Some(p) => at + p + 1,
            None => part.len(),
        };
        ranges.push(start..end);
        start = end;
    }
    ranges
}

/// The bytes parsed per round and, if fixed, per chunk (else a share of the round's, at
/// least `MIN_CHUNK`); tests pick small ones.
fn sizes() -> (usize, Option<usize>) {
    #[cfg(test)]
    if let Some(s) = tests::SIZES.get() {
        return s;
    }
    (BLOCK, None)
}

/// What a record's field is for.
#[derive(Clone, Copy, PartialEq)]
enum Role {
    /// A feature, kept at this place in the row.
    Feature(usize),
    Label,
    Other,
}

/// Each field's role; `None` (this path does not apply) if a column would be read twice.
fn roles(plan: &Plan) -> Option<Vec<Role>> {
    let mut roles = vec![Role::Other; plan.fields];
    for (slot, &j) in plan.features.iter().enumerate() {
        let r = roles.get_mut(j)?;
        if *r != Role::Other {
            return None;
        }
        *r = Role::Feature(slot);
    }
    if let Some(l) = plan.label {
        let r = roles.get_mut(l)?;
        if *r != Role::Other {
            return None;
        }
        *r = Role::Label;
    }
    Some(roles)
}

/// Powers of ten that f64 holds exactly.
const POW10: [f64; 23] = [
    1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16,
    1e17, 1e18, 1e19, 1e20, 1e21, 1e22,
];

/// A decimal number at the start of `b` (`[+-]digits[.digits][(e|E)[+-]digits]`, digits on
/// at least one side of the point) whose value Clinger's fast path gets exactly: at most 19
/// digits worth at most 2^53, times 10^e for |e| ≤ 22, so one correctly rounded f64
/// operation gives the correctly rounded value, the one `str::parse::<f64>` returns. Returns
/// the value and the bytes read; `None` for anything else, which the full parser reads.
#[inline]
fn quick_number(b: &[u8]) -> Option<(f64, usize)> {
    let digits = |b: &[u8], mut i: usize, m: &mut u64| {
        let from = i;
        while let Some(d) = b.get(i).map(|c| c.wrapping_sub(b'0')).filter(|&d| d <= 9) {
            *m = m.wrapping_mul(10).wrapping_add(u64::from(d));
            i += 1;
        }
        (i, i - from)
    };
    let (neg, mut i) = match b.first() {
        Some(b'-') => (true, 1),
        Some(b'+') => (false, 1),
        _ => (false, 0),
    };
    let mut m = 0u64;
    let (at, int) = digits(b, i, &mut m);
    i = at;
    let mut frac = 0;
    if b.get(i) == Some(&b'.') {
        (i, frac) = digits(b, i + 1, &mut m);
    }
    if int + frac == 0 || int + frac > 19 || m > 1 << 53 {
        return None;
    }
    let mut e = -(frac as i64);
    if let Some(c) = b.get(i)
        && c | 0x20 == b'e'
    {
        let (eneg, from) = match b.get(i + 1) {
            Some(b'-') => (true, i + 2),
            Some(b'+') => (false, i + 2),
            _ => (false, i + 1),
        };
        let mut x = 0u64;
        let (at, n) = digits(b, from, &mut x);
        if n == 0 || n > 4 {
            return None;
        }
        i = at;
        e += if eneg { -(x as i64) } else { x as i64 };
    }
    let v = m as f64;
    let v = match e {
        0..=22 => v * POW10[e as usize],
        -22..=-1 => v / POW10[(-e) as usize],
        _ => return None,
    };
    Some((if neg { -v } else { v }, i))
}

/// A feature cell's value as the sequential loop reads it (f64, correctly rounded, then
/// f32); `None` where that loop reports an error.
fn feature(v: Option<f64>) -> Option<f32> {
    let v = v?;
    let v32 = v as f32;
    (v.is_finite() && v32.is_finite()).then_some(v32)
}

/// Where the field starting at `from` ends: at the delimiter, a line break, a quote (which
/// stops this path) or the end.
#[inline]
fn field_end(bytes: &[u8], from: usize, delimiter: u8) -> usize {
    bytes[from..]
        .iter()
        .position(|&b| b == delimiter || b == b'\n' || b == b'\r' || b == b'"')
        .map_or(bytes.len(), |p| from + p)
}

/// Parses the records of `bytes` (whole records, line breaks included) into the cleared
/// `c`; `None` if any of them is not for this path.
fn parse_chunk(c: &mut Chunk, plan: &Plan, roles: &[Role], want: Want, bytes: &[u8]) -> Option<()> {
    // Fields split at ASCII bytes, so all are UTF-8 if the chunk is.
    std::str::from_utf8(bytes).ok()?;
    let (f, d) = (plan.features.len(), plan.delimiter);
    // Features in file order (as chosen by the options) are pushed as read.
    let in_order = plan.features.is_sorted();
    // A record of F fields takes at least F bytes; most take several a field.
    let guess = bytes.len() / (4 * plan.fields.max(1)) + 1;
    c.x.try_reserve_exact(guess.checked_mul(f)?).ok()?;
    let mut index: HashMap<&str, u32> = HashMap::new();
    let n = bytes.len();
    let mut i = 0;
    while i < n {
        match bytes[i] {
            b'\n' => {
                c.newlines += 1;
                i += 1;
                continue;
            }
            b'\r' => {
                i += 1;
                continue;
            }
            _ => {}
        }
        let first = i;
        let base = c.x.len();
        if c.x.capacity() - base < f {
            c.x.try_reserve(f).ok()?;
        }
        if !in_order {
            c.x.resize(base + f, 0.0);
        }
        let mut start = i;
        let mut j = 0;
        loop {
            let end = match roles.get(j)? {
                Role::Feature(slot) => {
                    let quick = quick_number(&bytes[start..]).filter(|&(_, k)| {
                        bytes
                            .get(start + k)
                            .is_none_or(|&b| b == d || b == b'\n' || b == b'\r')
                    });
                    let (v, end) = match quick {
                        // Finite in f32 too: below 2^53 · 10^22 < 3.4 · 10^38.
                        Some((v, k)) => (v as f32, start + k),
                        None => {
                            let end = field_end(bytes, start, d);
                            let v = fast_float2::parse(bytes[start..end].trim_ascii()).ok();
                            (feature(v)?, end)
                        }
                    };
                    if in_order {
                        c.x.push(v);
                    } else {
                        c.x[base + slot] = v;
                    }
                    end
                }
                Role::Label => {
                    let end = field_end(bytes, start, d);
                    let field = &bytes[start..end];
                    let lab = std::str::from_utf8(field.trim_ascii()).ok()?;
                    let from = start + field.len() - field.trim_ascii_start().len();
                    match want {
                        _ if lab.is_empty() => return None,
                        Want::Learn => {
                            let t = match index.get(lab) {
                                Some(&t) => t,
                                None if c.texts.len() >= MAX_CLASSES => return None,
                                None => {
                                    let t = c.texts.len() as u32;
                                    c.texts.push(from..from + lab.len());
                                    index.insert(lab, t);
                                    t
                                }
                            };
                            c.of_row.push(t);
                        }
                        Want::Fixed(mapping, values) => {
                            c.y.push(fixed_class(mapping, values, lab)? as f32);
                        }
                        Want::Absent => {}
                    }
                    end
                }
                Role::Other => field_end(bytes, start, d),
            };
            j += 1;
            match bytes.get(end) {
                Some(&b) if b == d => start = end + 1,
                Some(b'"') => return None,
                _ => {
                    i = end;
                    break;
                }
            }
        }
        if j != plan.fields || i - first + 1 >= plan.max_record {
            return None;
        }
        c.rows += 1;
    }
    Some(())
}

#[cfg(test)]
pub(super) mod tests {
    use std::cell::Cell;

    use super::*;
    use crate::data::csv::tests::{sequential, sequential_like, sequential_named};
    use crate::data::records::MAX_RECORD_BYTES;
    use crate::data::{CsvOptions, Dataset, parse_csv, parse_csv_like, parse_csv_named};
    use crate::error::Result;

    thread_local! {
        /// Round and chunk sizes for `run` on this thread (`None`: the defaults).
        pub(in crate::data) static SIZES: Cell<Option<(usize, Option<usize>)>> =
            const { Cell::new(None) };
    }

    /// Sizes to try: the defaults, about a line a chunk, small rounds, rounds shorter than a
    /// line.
    pub(in crate::data) const TRIES: [Option<(usize, Option<usize>)>; 6] = [
        None,
        Some((1 << 20, Some(1))),
        Some((4096, Some(100))),
        Some((64, Some(7))),
        Some((17, Some(3))),
        Some((5, Some(1))),
    ];

    pub(in crate::data) fn with_sizes<T>(
        s: Option<(usize, Option<usize>)>,
        f: impl FnOnce() -> T,
    ) -> T {
        SIZES.set(s);
        let r = f();
        SIZES.set(None);
        r
    }

    /// A parse's result as text: the shape, names, mapping, labels and the bits of `x`.
    fn shown(r: Result<Dataset>) -> String {
        match r {
            Ok(d) => {
                let bits: Vec<u32> = d.x.iter().map(|v| v.to_bits()).collect();
                format!(
                    "{} × {} {:?} {:?} y {:?} x {bits:?} from {}",
                    d.rows, d.features, d.feature_names, d.label, d.y, d.source
                )
            }
            Err(e) => format!("error: {e}"),
        }
    }

    /// Asserts that every size gives the sequential result; returns it.
    fn same(text: &[u8], opts: &CsvOptions) -> String {
        let want = shown(sequential("t.csv", text, opts));
        for s in TRIES {
            let got = with_sizes(s, || shown(parse_csv("t.csv", text, opts)));
            assert_eq!(
                got,
                want,
                "sizes {s:?}: {:?}",
                String::from_utf8_lossy(text)
            );
        }
        want
    }

    /// `rows` lines of three cells, the last a 0/1 label, after the header `a,b,y`.
    fn rows(n: usize, end: &str) -> String {
        let mut t = format!("a,b,y{end}");
        for i in 0..n {
            t += &format!(
                "{}.{},-{}e-{},{}{end}",
                i % 97,
                i % 10,
                i % 13,
                i % 5,
                i % 2
            );
        }
        t
    }

    /// The rows `run` takes of `text` before it hands over, and the line the sequential
    /// reader reads next.
    fn taken(text: &[u8], s: (usize, Option<usize>)) -> (usize, Option<u64>) {
        let mut recs = Records::new("t.csv", text, b',', None, MAX_RECORD_BYTES);
        recs.next_record().unwrap().unwrap();
        let fields = recs.len();
        let features: Vec<usize> = (0..fields - 1).collect();
        let plan = Plan {
            delimiter: b',',
            fields,
            features: &features,
            label: Some(fields - 1),
            max_record: MAX_RECORD_BYTES,
            budget: u64::MAX,
            row_bytes: Some(8 + 4 * features.len() as u64),
            max_x: usize::MAX,
        };
        let (mut x, mut rows) = (Vec::new(), 0);
        let mut sink = LabelSink::Learn(Default::default());
        let out = Rows {
            x: &mut x,
            rows: &mut rows,
            sink: &mut sink,
        };
        with_sizes(Some(s), || run(&mut recs, &plan, out));
        assert_eq!(x.len(), rows * features.len());
        (rows, recs.next_record().unwrap())
    }

    #[test]
    fn awkward_inputs_read_as_sequentially() {
        let opts = CsvOptions::default();
        let mut texts = vec![
            rows(3000, "\n"),
            rows(3000, "\r\n"),
            rows(500, "\r"),
            rows(200, "\n\n"),
            rows(200, "\r\n\r\n"),
            format!("\u{feff}{}", rows(300, "\r\n")),
            rows(300, "\n").trim_end().to_string(),
            rows(300, "\n") + "\n\n\r\n",
            "a,b,y\n1,2,0\n3,4,1\n\n".into(),
            "a,b,y\r\n\r\n1,2,0\r\n3,4,1".into(),
            "a,b,y\n 1 ,\t2\t, 0 \n3,4,1\n".into(),
            "a,b,y\n1e5,-0,1\n+.5,1.,0\n0.1e-3,1E+2,1\n1e-400,3.4028235e38,0\n".into(),
            "a,b,y\n123456789012345678901234567890,0.000000000000000000000000001,1\n2,3,0\n".into(),
            "a,b,y\n1,2,M\n3,4,B\n5,6,M\n".into(),
            "a,b,y\n1,2,1\n3,4,1.0\n5,6,0\n7,8,x\n".into(),
        ];
        // Many short lines and a long one.
        texts.push(format!("a,y\n{}", "1,0\n2,1\n".repeat(5000)));
        texts.push(format!("a,b,y\n0.{},1,0\n2,3,1\n", "1".repeat(300)));
        for t in &texts {
            let got = same(t.as_bytes(), &opts);
            assert!(!got.starts_with("error"), "{got}");
        }
        // Other delimiters, columns picked and dropped.
        for (t, opts) in [
            (
                "a;b;y\n1;2;0\n3;4;1\n",
                CsvOptions {
                    delimiter: b';',
                    ..Default::default()
                },
            ),
            (
                "a b y\n1 2 0\n3 4 1\n",
                CsvOptions {
                    delimiter: b' ',
                    ..Default::default()
                },
            ),
            (
                "a\tb\ty\n1\t2\t0\n3\t4\t1\n",
                CsvOptions {
                    delimiter: b'\t',
                    ..Default::default()
                },
            ),
            (
                "id,y,f,g\n7,0,1.5,x\n8,1,2.5,y\n",
                CsvOptions {
                    label: Some("y".into()),
                    drop: vec!["id".into(), "g".into()],
                    ..Default::default()
                },
            ),
        ] {
            let got = same(t.as_bytes(), &opts);
            assert!(!got.starts_with("error"), "{got}");
        }
    }

    #[test]
    fn an_error_in_a_later_chunk_names_its_line_and_column() {
        let opts = CsvOptions::default();
        let good = rows(3000, "\n");
        let lines: Vec<&str> = good.split_inclusive('\n').collect();
        let with = |edits: &[(usize, &str)]| {
            let mut l = lines.clone();
            for &(at, row) in edits {
                l[at - 1] = row;
            }
            l.concat()
        };
        for (edits, want) in [
            (
                vec![(2001, "1,x,0\n")],
                "t.csv, line 2001, column 2 \"b\": \"x\" is not a number",
            ),
            (
                vec![(2500, "1,2,0\n"), (2900, "1,,0\n"), (2600, "1,1e39,1\n")],
                "t.csv, line 2600, column 2 \"b\": \"1e39\" is outside the range of f32",
            ),
            (
                vec![(2900, "1,x,0\n"), (900, "inf,2,0\n")],
                "t.csv, line 900, column 1 \"a\": \"inf\" is not a finite number",
            ),
            (
                vec![(1500, "1,2\n")],
                "t.csv, line 1500: expected 3 fields (as in the header), found 2",
            ),
            (
                vec![(2999, "1,2,\n")],
                "t.csv, line 2999, column 3 \"y\": the label is empty",
            ),
            (
                vec![(2002, "1,\"2\n"), (2003, "3\",0\n")],
                "t.csv, line 2002, column 2 \"b\": \"2\n3\" is not a number",
            ),
            (
                vec![(2998, "1,\"2,0\n")],
                "t.csv, line 2998: the quote that opens a field on line 2998 never closes",
            ),
        ] {
            let got = same(with(&edits).as_bytes(), &opts);
            assert!(got.starts_with(&format!("error: {want}")), "{got}");
        }
        let mut bytes = good.clone().into_bytes();
        let at = lines[..1700].concat().len();
        bytes[at] = 0xFF;
        let got = same(&bytes, &opts);
        assert!(
            got.starts_with("error: t.csv, line 1701: invalid UTF-8 in field 1"),
            "{got}"
        );
        // A quote in a column read for nothing still opens a field.
        let drop_a = CsvOptions {
            drop: vec!["a".into()],
            ..Default::default()
        };
        let got = same(with(&[(2998, "\"1,0\n")]).as_bytes(), &drop_a);
        assert!(
            got.starts_with("error: t.csv, line 2998: the quote that opens a field on line 2998"),
            "{got}"
        );
        // A quoted field is read (sequentially from its chunk on).
        let got = same(with(&[(2002, "\"1\",2,0\n")]).as_bytes(), &opts);
        assert_eq!(got, same(with(&[(2002, "1,2,0\n")]).as_bytes(), &opts));
        // The 257th class (on row 354) is refused on its line.
        let mut t = String::from("a,y\n");
        for i in 0..400 {
            t += &format!("{i},{}\n", if i < 100 { i % 2 } else { i });
        }
        let got = same(t.as_bytes(), &opts);
        assert!(
            got.starts_with("error: t.csv, line 356: the label column \"y\" has more than 256"),
            "{got}"
        );
    }

    #[test]
    fn the_parallel_path_hands_over_at_the_chunk_of_a_problem() {
        let good = rows(1000, "\n");
        for s in [(1 << 20, Some(100)), (300, Some(50)), (64, None)] {
            assert_eq!(taken(good.as_bytes(), s), (1000, None), "{s:?}");
        }
        let lines: Vec<&str> = good.split_inclusive('\n').collect();
        for bad in ["1,x,0\n", "1,\"2\",0\n", "1,2\n", "1,2,\n"] {
            let mut l = lines.clone();
            l[700] = bad;
            let (rows, next) = taken(l.concat().as_bytes(), (4096, Some(200)));
            // The chunks before line 701 are taken; the sequential reader goes on after.
            assert!(rows > 400 && rows < 699, "{bad:?}: {rows}");
            assert_eq!(next, Some(rows as u64 + 2), "{bad:?}");
        }
        // Rounds shorter than a line: all sequential.
        assert_eq!(taken(good.as_bytes(), (4, Some(1))), (0, Some(2)));
    }

    #[test]
    fn validation_and_model_rows_read_as_sequentially() {
        let train = parse_csv(
            "t.csv",
            b"id,a,b,y\n1,1,2,M\n2,3,4,B\n",
            &CsvOptions {
                drop: vec!["id".into()],
                ..Default::default()
            },
        )
        .unwrap();
        let mut val = String::from("b,y,extra,a\n");
        for i in 0..2000 {
            val += &format!("{i},{},x,-{i}.5\n", if i % 3 == 0 { "M" } else { "B" });
        }
        let mut bad = val.clone();
        bad += "1,Q,x,2\n";
        let unnamed = val.replace(",M,", ",0,").replace(",B,", ",1,");
        for text in [&val, &bad, &unnamed] {
            let want = shown(sequential_like("v.csv", text.as_bytes(), &train));
            for s in TRIES {
                let got = with_sizes(s, || {
                    shown(parse_csv_like("v.csv", text.as_bytes(), &train))
                });
                assert_eq!(got, want, "{s:?}");
            }
        }
        let e = parse_csv_like("v.csv", bad.as_bytes(), &train).unwrap_err();
        assert!(
            e.to_string()
                .starts_with("v.csv, line 2002, column 2 \"y\": label \"Q\""),
            "{e}"
        );
        let no_label = val
            .replace(",M,", ",")
            .replace(",B,", ",")
            .replace("b,y,", "b,");
        for text in [&val, &no_label] {
            let want =
                sequential_named("p.csv", text.as_bytes(), &train.feature_names, &train.label)
                    .map(|(d, l)| (shown(Ok(d)), l));
            for s in TRIES {
                let got = with_sizes(s, || {
                    parse_csv_named("p.csv", text.as_bytes(), &train.feature_names, &train.label)
                        .map(|(d, l)| (shown(Ok(d)), l))
                });
                assert_eq!(got.as_ref().ok(), want.as_ref().ok(), "{s:?}");
            }
        }
    }

    #[test]
    fn quick_numbers_are_those_of_the_full_parser() {
        for (s, n) in [
            ("0.01545689", 10),
            ("-5.943243e-05", 13),
            ("+.5", 3),
            ("1.", 2),
            ("-0", 2),
            ("7,", 1),
            ("1e22", 4),
            ("0.0005833769", 12),
            ("12345678901234", 14),
            ("-12345678.87654321e-3", 21),
            ("12345678:", 8),
        ] {
            let (v, k) = quick_number(s.as_bytes()).unwrap_or_else(|| panic!("{s}"));
            assert_eq!(k, n, "{s}");
            assert_eq!(v.to_bits(), s[..k].parse::<f64>().unwrap().to_bits(), "{s}");
        }
        for s in [
            "",
            "-",
            ".",
            "e5",
            "1e",
            "1e+",
            "1e23",
            "9007199254740993",
            "12345678901234567890",
        ] {
            assert_eq!(quick_number(s.as_bytes()), None, "{s}");
        }
    }

    proptest::proptest! {
        #[test]
        fn numbers_parse_as_std_parses_them(
            s in "[+-]?[0-9]{0,22}(\\.[0-9]{0,22})?([eE][+-]?[0-9]{1,5})?",
        ) {
            let std = s.parse::<f64>().ok().map(f64::to_bits);
            let full = fast_float2::parse::<f64, _>(s.as_bytes()).ok().map(f64::to_bits);
            proptest::prop_assert_eq!(full, std);
            if let Some((v, k)) = quick_number(s.as_bytes()) {
                proptest::prop_assert_eq!(Some(v.to_bits()), s[..k].parse::<f64>().ok().map(f64::to_bits));
            }
        }

        #[test]
        fn any_rows_read_as_sequentially(
            rows in proptest::collection::vec(
                (proptest::collection::vec(0u16..400, 2..5), 0u8..8, 0u8..4), 0..80),
            block in 1usize..200,
            chunk in 1usize..40,
            drop in proptest::bool::ANY,
        ) {
            let mut text = String::from("a,b,y\n");
            for (cells, end, label) in &rows {
                let n = cells.len();
                for (i, &c) in cells.iter().enumerate() {
                    let cell = match c {
                        _ if i == n - 1 => ["0", "1", "M", " 1 "][*label as usize].to_string(),
                        0 => String::new(),
                        1 => "x".into(),
                        2 => " 7 ".into(),
                        3 => "\"5\"".into(),
                        4 => "1e400".into(),
                        5 => "-0".into(),
                        6 => "+.5e-3".into(),
                        7 => "123456789012345678901234".into(),
                        8 => "\"".into(),
                        c if c % 2 == 0 => format!("{}.{}", c / 7, c % 7),
                        c => format!("-{}e{}", c % 10, c % 45),
                    };
                    text += &cell;
                    if i + 1 < n {
                        text.push(',');
                    }
                }
                text += ["\n", "\n", "\n", "\r\n", "\r", "\n\n", " \n", ""][*end as usize];
            }
            let opts = CsvOptions {
                drop: if drop { vec!["a".into()] } else { Vec::new() },
                ..Default::default()
            };
            let want = shown(sequential("t.csv", text.as_bytes(), &opts));
            let got = with_sizes(Some((block, Some(chunk))), || {
                shown(parse_csv("t.csv", text.as_bytes(), &opts))
            });
            proptest::prop_assert_eq!(got, want);
        }
    }
}
