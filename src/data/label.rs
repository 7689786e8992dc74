//! Exact label values: a numeric label read as a decimal (sign, digits, exponent), so that
//! labels compare and order exactly ("1" = "1.0" = "1e0" = "+1"; 2^53 + 1 ≠ 2^53), never
//! through f64.

use std::cmp::Ordering;

/// A decimal number: `digits × 10^exp`, negative if `neg`. Normal form: no leading or
/// trailing zero digit, and zero is `digits` empty, `neg` false, `exp` 0, so equal values
/// have equal fields.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Decimal {
    neg: bool,
    digits: Vec<u8>,
    exp: i128,
}

/// Reads a decimal literal as f64's parser would take it (`[+-]digits[.digits][e[+-]digits]`,
/// either side of the point may be empty, not both); `None` for anything else, including
/// `inf`, `NaN` and an exponent beyond i128.
pub fn parse(s: &str) -> Option<Decimal> {
    let b = s.as_bytes();
    let (neg, b) = match b.split_first() {
        Some((b'-', r)) => (true, r),
        Some((b'+', r)) => (false, r),
        _ => (false, b),
    };
    let digits_at = |b: &[u8]| b.iter().take_while(|c| c.is_ascii_digit()).count();
    let n = digits_at(b);
    let (int, mut rest) = b.split_at(n);
    let mut frac: &[u8] = &[];
    if let Some((b'.', r)) = rest.split_first() {
        let n = digits_at(r);
        (frac, rest) = r.split_at(n);
    }
    if int.is_empty() && frac.is_empty() {
        return None;
    }
    let mut exp: i128 = 0;
    if let Some((&e, r)) = rest.split_first() {
        if e != b'e' && e != b'E' {
            return None;
        }
        let (eneg, r) = match r.split_first() {
            Some((b'-', r)) => (true, r),
            Some((b'+', r)) => (false, r),
            _ => (false, r),
        };
        if r.is_empty() || digits_at(r) != r.len() {
            return None;
        }
        for &d in r {
            exp = exp.checked_mul(10)?.checked_add(i128::from(d - b'0'))?;
        }
        if eneg {
            exp = -exp;
        }
    }
    let all: Vec<u8> = int.iter().chain(frac).copied().collect();
    let Some(first) = all.iter().position(|&d| d != b'0') else {
        return Some(Decimal {
            neg: false,
            digits: Vec::new(),
            exp: 0,
        });
    };
    let last = all.iter().rposition(|&d| d != b'0').unwrap_or(first);
    let trailing = (all.len() - 1 - last) as i128;
    let exp = exp.checked_sub(frac.len() as i128)?.checked_add(trailing)?;
    Some(Decimal {
        neg,
        digits: all[first..=last].to_vec(),
        exp,
    })
}

impl Decimal {
    fn sign(&self) -> i8 {
        match (self.digits.is_empty(), self.neg) {
            (true, _) => 0,
            (false, true) => -1,
            (false, false) => 1,
        }
    }
}

impl Ord for Decimal {
    fn cmp(&self, other: &Self) -> Ordering {
        match self.sign().cmp(&other.sign()) {
            Ordering::Equal if self.digits.is_empty() => Ordering::Equal,
            Ordering::Equal => {
                // |v| lies in [10^(a−1), 10^a) for a = exp + number of digits; with equal a,
                // the digit strings order the values (a proper prefix is the smaller).
                let a = |d: &Decimal| d.exp.saturating_add(d.digits.len() as i128);
                let magnitude = a(self)
                    .cmp(&a(other))
                    .then_with(|| self.digits.cmp(&other.digits));
                if self.neg {
                    magnitude.reverse()
                } else {
                    magnitude
                }
            }
            unequal => unequal,
        }
    }
}

impl PartialOrd for Decimal {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// Whether two label texts name the same value: equal texts, or equal numbers.
pub fn same(a: &str, b: &str) -> bool {
    a == b || matches!((parse(a), parse(b)), (Some(x), Some(y)) if x == y)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> Decimal {
        parse(s).unwrap_or_else(|| panic!("{s} is a number"))
    }

    #[test]
    fn equal_values_in_any_spelling() {
        for group in [
            &[
                "1", "1.0", "1e0", "+1", "01", "1.", "10e-1", "0.1E1", "1E+0",
            ][..],
            &["0", "-0", "0.000", ".0", "0e99", "-0e-5"],
            &["-2.5", "-25e-1", "-0.25e1", "-2.50"],
            &["100000000000000000000", "1e20"],
        ] {
            for a in group {
                for b in group {
                    assert_eq!(d(a), d(b), "{a} = {b}");
                    assert!(same(a, b));
                }
            }
        }
    }

    #[test]
    fn close_values_differ_and_order_exactly() {
        let ascending = [
            "-100000000000000000001",
            "-100000000000000000000",
            "-1",
            "-0.10000000000000001",
            "-0.1",
            "0",
            "1e-400",
            "0.1",
            "0.10000000000000001",
            "5",
            "9007199254740992",
            "9007199254740993",
            "100000000000000000000",
            "100000000000000000001",
            "1e400",
        ];
        for (i, a) in ascending.iter().enumerate() {
            for (j, b) in ascending.iter().enumerate() {
                assert_eq!(d(a).cmp(&d(b)), i.cmp(&j), "{a} vs {b}");
            }
        }
        assert!(!same("9007199254740992", "9007199254740993"));
        assert!(!same("0.1", "0.10000000000000001"));
    }

    #[test]
    fn only_decimal_literals_are_numbers() {
        for s in [
            "",
            "+",
            "-",
            ".",
            "e5",
            "1e",
            "1e+",
            "1.2.3",
            "inf",
            "NaN",
            "1 2",
            "0x10",
            "١",
            "1e99999999999999999999999999999999999999999",
        ] {
            assert_eq!(parse(s), None, "{s:?}");
        }
        assert_eq!(d("1e-99999999999999999999"), d("1e-99999999999999999999"));
        assert!(d("1e-99999999999999999999") > d("0"));
    }
}
