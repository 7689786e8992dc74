//! The machine's memory, and the check that a size fits it before anything is allocated.
//!
//! Sizes are computed with checked arithmetic (`None`: past u64) and compared with the
//! physical memory (`MemTotal` of /proc/meminfo, or a cgroup's `memory.max` where lower).
//! Where neither can be read, the bound is the most one allocation may hold (`isize::MAX`).

use std::sync::OnceLock;

use crate::error::{Error, Result};

/// The memory sizes are held to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limit {
    pub bytes: u64,
    /// `bytes` is the machine's memory (else only the most one allocation may hold).
    pub known: bool,
}

impl Limit {
    /// "this machine's 23.5 GiB of memory", or the allocation bound where memory is unknown.
    pub fn describe(&self) -> String {
        if self.known {
            format!("this machine's {} of memory", fmt_bytes(self.bytes))
        } else {
            format!("the {} one allocation may hold", fmt_bytes(self.bytes))
        }
    }
}

/// The most one allocation may hold.
const ALLOC_MAX: u64 = isize::MAX as u64;

/// This machine's limit, read once.
pub fn limit() -> Limit {
    static LIMIT: OnceLock<Limit> = OnceLock::new();
    *LIMIT.get_or_init(|| {
        let total = std::fs::read_to_string("/proc/meminfo")
            .ok()
            .and_then(|t| parse_meminfo(&t));
        let cgroup = std::fs::read_to_string("/sys/fs/cgroup/memory.max")
            .ok()
            .and_then(|t| parse_cgroup_max(&t));
        let bytes = match (total, cgroup) {
            (Some(t), Some(c)) => Some(t.min(c)),
            (t, c) => t.or(c),
        };
        match bytes {
            Some(b) => Limit {
                bytes: b.min(ALLOC_MAX),
                known: true,
            },
            None => Limit {
                bytes: ALLOC_MAX,
                known: false,
            },
        }
    })
}

/// `MemTotal` of /proc/meminfo, in bytes.
pub fn parse_meminfo(text: &str) -> Option<u64> {
    let line = text.lines().find(|l| l.starts_with("MemTotal:"))?;
    let mut words = line["MemTotal:".len()..].split_whitespace();
    let value: u64 = words.next()?.parse().ok()?;
    match words.next() {
        Some("kB") => value.checked_mul(1024),
        None => Some(value),
        Some(_) => None,
    }
}

/// A cgroup v2 `memory.max`: a byte count, or `max` (no limit: `None`).
pub fn parse_cgroup_max(text: &str) -> Option<u64> {
    text.trim().parse().ok()
}

/// Bytes of `count` f32 values.
pub fn f32_bytes(count: u64) -> Option<u64> {
    count.checked_mul(4)
}

/// Σ of terms, each `None` past u64; `None` if any is or the sum is.
pub fn sum(terms: impl IntoIterator<Item = Option<u64>>) -> Option<u64> {
    terms
        .into_iter()
        .try_fold(0u64, |acc, t| acc.checked_add(t?))
}

/// `a · b`, `None` past u64.
pub fn mul(a: impl TryInto<u64>, b: impl TryInto<u64>) -> Option<u64> {
    a.try_into().ok()?.checked_mul(b.try_into().ok()?)
}

/// Checks that `bytes` (`None`: past u64) fit this machine. `what` gets the size in words
/// ("37.3 GiB") and says what needs it; the error adds what it is more than.
pub fn check(bytes: Option<u64>, what: impl FnOnce(&str) -> String) -> Result<()> {
    check_against(limit(), bytes, what)
}

/// [`check`] against a given limit.
pub fn check_against(
    limit: Limit,
    bytes: Option<u64>,
    what: impl FnOnce(&str) -> String,
) -> Result<()> {
    match bytes {
        Some(b) if b <= limit.bytes => Ok(()),
        _ => Err(Error::TooLarge(format!(
            "{}, more than {}",
            what(&size_text(bytes)),
            limit.describe()
        ))),
    }
}

/// "37.3 GiB", or "over 16 EiB" past u64.
pub fn size_text(bytes: Option<u64>) -> String {
    match bytes {
        Some(b) => fmt_bytes(b),
        None => "over 16 EiB".into(),
    }
}

/// A byte count in binary units, one decimal: "512 B", "1.5 KiB", "23.5 GiB".
pub fn fmt_bytes(b: u64) -> String {
    const UNITS: [&str; 6] = ["KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
    if b < 1024 {
        return format!("{b} B");
    }
    let mut v = b as f64 / 1024.0;
    let mut unit = 0;
    while v >= 1024.0 && unit + 1 < UNITS.len() {
        v /= 1024.0;
        unit += 1;
    }
    format!("{v:.1} {}", UNITS[unit])
}

/// A count with thousands separators: 10,000,500,001.
pub fn fmt_count(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// `fmt_count`, or "over 18,446,744,073,709,551,615" past u64.
pub fn count_text(n: Option<u64>) -> String {
    match n {
        Some(n) => fmt_count(n),
        None => format!("over {}", fmt_count(u64::MAX)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn meminfo_and_cgroup_are_read() {
        let text = "MemTotal:       24683652 kB\nMemFree:        21710144 kB\n";
        assert_eq!(parse_meminfo(text), Some(24683652 * 1024));
        assert_eq!(parse_meminfo("MemFree: 5 kB\n"), None);
        assert_eq!(parse_meminfo("MemTotal: x kB\n"), None);
        assert_eq!(parse_meminfo("MemTotal: 99999999999999999999 kB\n"), None);
        assert_eq!(parse_cgroup_max("max\n"), None);
        assert_eq!(parse_cgroup_max("1073741824\n"), Some(1 << 30));
        let l = limit();
        assert!(l.bytes > 0 && l.bytes <= ALLOC_MAX);
    }

    #[test]
    fn sizes_are_checked_and_stated() {
        let l = Limit {
            bytes: 1 << 30,
            known: true,
        };
        assert!(check_against(l, Some(1 << 30), |_| unreachable!()).is_ok());
        let e = check_against(l, Some((1 << 30) + 1), |s| format!("the thing needs {s}"))
            .unwrap_err()
            .to_string();
        assert_eq!(
            e,
            "the thing needs 1.0 GiB, more than this machine's 1.0 GiB of memory"
        );
        let e = check_against(l, None, |s| format!("needs {s}"))
            .unwrap_err()
            .to_string();
        assert_eq!(
            e,
            "needs over 16 EiB, more than this machine's 1.0 GiB of memory"
        );
        let unknown = Limit {
            bytes: ALLOC_MAX,
            known: false,
        };
        assert!(unknown.describe().contains("one allocation may hold"));
        assert_eq!(sum([Some(1), Some(2)]), Some(3));
        assert_eq!(sum([Some(u64::MAX), Some(1)]), None);
        assert_eq!(sum([Some(1), None]), None);
        assert_eq!(mul(usize::MAX, 2usize), None);
        assert_eq!(f32_bytes(u64::MAX / 2), None);
    }

    #[test]
    fn numbers_read_well() {
        assert_eq!(fmt_bytes(512), "512 B");
        assert_eq!(fmt_bytes(1536), "1.5 KiB");
        assert_eq!(fmt_bytes(40_002_000_004), "37.3 GiB");
        assert_eq!(fmt_bytes(u64::MAX), "16.0 EiB");
        assert_eq!(fmt_count(0), "0");
        assert_eq!(fmt_count(999), "999");
        assert_eq!(fmt_count(1000), "1,000");
        assert_eq!(fmt_count(10_000_500_001), "10,000,500,001");
        assert_eq!(count_text(None), "over 18,446,744,073,709,551,615");
    }
}
