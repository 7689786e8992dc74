//! The two classes of a training file's label column, learned as the rows stream by and then
//! mapped to 0/1: the larger number (compared exactly) or the text that sorts last is class 1,
//! unless `--positive` names the other.

use super::LabelMapping;
use super::label::{self, Decimal};
use crate::error::{Error, Result};

/// Distinct label values of training rows, found as the rows stream by: each row keeps a
/// code (bit 0: it holds the second distinct text; bit 1: the second distinct number).
#[derive(Default)]
pub(super) struct Learned {
    /// Distinct texts in order of appearance (up to 7), each with its value if a number.
    texts: Vec<(String, Option<Decimal>)>,
    /// Distinct numbers in order of appearance (up to 7), each with its first text.
    nums: Vec<(String, Decimal)>,
    more_texts: bool,
    more_nums: bool,
    /// A label that is not a number was seen: labels compare as texts.
    some_text: bool,
    /// The line of the first row holding a third distinct text, number.
    third_text: Option<u64>,
    third_num: Option<u64>,
    codes: Vec<u8>,
}

/// Distinct values kept for the message about too many.
const SHOWN: usize = 7;

impl Learned {
    pub(super) fn add(&mut self, t: &str, line: u64) {
        let ti = self.texts.iter().position(|c| c.0 == t);
        let parsed;
        let value = match ti {
            Some(i) => self.texts[i].1.as_ref(),
            None => {
                parsed = label::parse(t);
                parsed.as_ref()
            }
        };
        let mut code = 0u8;
        if value.is_none() {
            self.some_text = true;
        }
        let ni = value.and_then(|v| self.nums.iter().position(|c| c.1 == *v));
        let new_num = match (value, ni) {
            (Some(v), None) if !self.some_text => Some(v.clone()),
            _ => None,
        };
        let new_text = ti.is_none().then(|| value.cloned());
        match ti {
            Some(i) => code |= u8::from(i == 1),
            None => {
                if let Some(v) = new_text {
                    if self.texts.len() < SHOWN {
                        self.texts.push((t.to_string(), v));
                        code |= u8::from(self.texts.len() == 2);
                        if self.texts.len() == 3 {
                            self.third_text = Some(line);
                        }
                    } else {
                        self.more_texts = true;
                    }
                }
            }
        }
        match (ni, new_num) {
            (Some(i), _) => code |= u8::from(i == 1) << 1,
            (None, Some(v)) => {
                if self.nums.len() < SHOWN {
                    self.nums.push((t.to_string(), v));
                    code |= u8::from(self.nums.len() == 2) << 1;
                    if self.nums.len() == 3 {
                        self.third_num = Some(line);
                    }
                } else {
                    self.more_nums = true;
                }
            }
            (None, None) => {}
        }
        self.codes.push(code);
    }

    /// Maps the rows to 0/1. Numeric labels: the larger value is positive. Text labels: the
    /// value that sorts last, unless `positive` names one.
    pub(super) fn finish(
        self,
        name: &str,
        column: &str,
        positive: Option<&str>,
    ) -> Result<(Vec<f32>, LabelMapping)> {
        let numeric = !self.some_text;
        let (classes, more, third, bit): (Vec<(String, Option<Decimal>)>, bool, _, u8) = if numeric
        {
            let classes = self.nums.into_iter().map(|(t, v)| (t, Some(v))).collect();
            (classes, self.more_nums, self.third_num, 2)
        } else {
            let classes = self.texts.into_iter().map(|(t, _)| (t, None)).collect();
            (classes, self.more_texts, self.third_text, 1)
        };
        match classes.len() {
            0 => return Err(Error::data(name, "no data rows after the header")),
            1 => {
                return Err(Error::data(
                    name,
                    format!(
                        "the label column \"{column}\" has only one distinct value (\"{}\"); a binary classifier needs exactly two",
                        classes[0].0
                    ),
                ));
            }
            2 => {}
            n => {
                let shown: Vec<String> = classes
                    .iter()
                    .take(SHOWN - 1)
                    .map(|c| format!("\"{}\"", c.0))
                    .collect();
                let etc = if more || n > SHOWN - 1 { ", ..." } else { "" };
                return Err(Error::Data {
                    path: name.into(),
                    line: third,
                    column: None,
                    msg: format!(
                        "the label column \"{column}\" has more than two distinct values ({}{etc}); a binary classifier needs exactly two (pick the label with --label)",
                        shown.join(", ")
                    ),
                });
            }
        }
        // Class 1 is the one holding the code bit; `hi` is the one that sorts last.
        let hi = match (&classes[0].1, &classes[1].1) {
            (Some(a), Some(b)) if numeric => usize::from(b > a),
            _ => usize::from(classes[1].0 > classes[0].0),
        };
        let lo = 1 - hi;
        let pos_idx = match positive {
            None => hi,
            Some(p) => {
                let pv = label::parse(p);
                classes
                    .iter()
                    .position(|c| c.0 == p || (numeric && pv.is_some() && c.1 == pv))
                    .ok_or_else(|| {
                        Error::Config(format!(
                            "--positive {p}: the label column \"{column}\" holds \"{}\" and \"{}\", not \"{p}\"",
                            classes[lo].0, classes[hi].0
                        ))
                    })?
            }
        };
        let y = self
            .codes
            .iter()
            .map(|&c| {
                let class = usize::from(c & bit != 0);
                if class == pos_idx { 1.0 } else { 0.0 }
            })
            .collect();
        Ok((
            y,
            LabelMapping {
                column: column.to_string(),
                positive: classes[pos_idx].0.clone(),
                negative: classes[1 - pos_idx].0.clone(),
            },
        ))
    }
}

#[cfg(test)]
mod tests {
    use crate::data::CsvOptions;
    use crate::data::csv::tests::{err, parse};

    #[test]
    fn numeric_labels_compare_exactly() {
        let d = parse("a,y\n1,1\n2,1.0\n3,0\n4,01\n", &CsvOptions::default()).unwrap();
        assert_eq!(d.y, vec![1.0, 1.0, 0.0, 1.0]);
        assert_eq!(
            (d.label.positive.as_str(), d.label.negative.as_str()),
            ("1", "0")
        );
        // Spellings of one number are distinct texts once a label is not a number.
        let e = err("a,y\n1,1\n2,1.0\n3,x\n", &CsvOptions::default());
        assert!(e.contains("t.csv, line 4: "), "{e}");
        assert!(e.contains("(\"1\", \"1.0\", \"x\")"), "{e}");
        let e = err(
            "a,y\n1,5\n2,9007199254740992\n3,9007199254740993\n",
            &CsvOptions::default(),
        );
        assert!(e.contains("t.csv, line 4: "), "{e}");
        let text = "a,y\n1,-100000000000000000001\n2,-100000000000000000000\n";
        let d = parse(text, &CsvOptions::default()).unwrap();
        assert_eq!(d.y, vec![0.0, 1.0]);
        let opts = CsvOptions {
            positive: Some("-1.00000000000000000001e20".into()),
            ..Default::default()
        };
        assert_eq!(parse(text, &opts).unwrap().y, vec![1.0, 0.0]);
        // Up to six values are shown, then "...".
        let rows: String = (0..9).map(|i| format!("{i},{i}\n")).collect();
        let e = err(&format!("a,y\n{rows}"), &CsvOptions::default());
        assert!(
            e.contains("(\"0\", \"1\", \"2\", \"3\", \"4\", \"5\", ...)"),
            "{e}"
        );
        assert!(e.contains("t.csv, line 4: "), "{e}");
    }

    #[test]
    fn numeric_labels_larger_is_positive() {
        let d = parse("a,b,y\n1,2,-1\n3,4,1\n5,6,-1\n", &CsvOptions::default()).unwrap();
        assert_eq!(d.y, vec![0.0, 1.0, 0.0]);
        assert_eq!(d.label.positive, "1");
        assert_eq!(d.label.negative, "-1");
        assert_eq!(d.x, vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
    }

    #[test]
    fn text_labels_sort_last_or_named() {
        let text = "x,diag\n1,M\n2,B\n";
        let d = parse(text, &CsvOptions::default()).unwrap();
        assert_eq!(d.y, vec![1.0, 0.0]); // "M" sorts after "B"
        let opts = CsvOptions {
            positive: Some("B".into()),
            ..Default::default()
        };
        let d = parse(text, &opts).unwrap();
        assert_eq!(d.y, vec![0.0, 1.0]);
        assert_eq!(d.label.negative, "M");
    }
}
