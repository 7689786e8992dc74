//! The classes of a training file's label column, learned as the rows stream by and then
//! put in order: ascending for numeric labels (compared exactly), sorted for text labels. Two
//! classes map to 0/1 with the larger (or last-sorting) value as class 1, unless
//! `--positive` names the other.

use std::collections::{HashMap, HashSet};

use super::LabelMapping;
use super::label::{self, Decimal};
use crate::error::{Error, Result};
use crate::model::MAX_CLASSES;

/// Distinct label texts of the training rows, found as the rows stream by; each row keeps the
/// index of its text.
#[derive(Default)]
pub(super) struct Learned {
    /// Distinct texts in order of appearance, each with its value if a number.
    texts: Vec<(String, Option<Decimal>)>,
    index: HashMap<String, u32>,
    /// Distinct numbers.
    nums: HashSet<Decimal>,
    /// A label that is not a number was seen: labels compare as texts.
    some_text: bool,
    /// Per row: its index in `texts`.
    rows: Vec<u32>,
}

/// Distinct values named in the message about too many.
const SHOWN: usize = 6;

impl Learned {
    /// Adds a row's label; an error once the column holds more classes than a model may have.
    pub(super) fn add(&mut self, name: &str, column: &str, t: &str, line: u64) -> Result<()> {
        let i = match self.index.get(t) {
            Some(&i) => i,
            None => {
                let value = label::parse(t);
                match &value {
                    None => self.some_text = true,
                    Some(v) => {
                        self.nums.insert(v.clone());
                    }
                }
                let i = self.texts.len() as u32;
                self.texts.push((t.to_string(), value));
                self.index.insert(t.to_string(), i);
                let classes = if self.some_text {
                    self.texts.len()
                } else {
                    self.nums.len()
                };
                if classes > MAX_CLASSES {
                    return Err(self.too_many(name, column, line));
                }
                i
            }
        };
        self.rows.push(i);
        Ok(())
    }

    /// Adds the labels of consecutive rows at once: `texts` holds their distinct values in
    /// order of first appearance, `rows` each row's index in `texts`. The same as `add` row
    /// by row, except that where that would fail (more classes than a model may have), this
    /// returns false and leaves everything as it was, for `add` to say so at the exact row.
    pub(super) fn add_run(&mut self, texts: &[&str], rows: &[u32]) -> bool {
        let (old_texts, old_some_text) = (self.texts.len(), self.some_text);
        let mut new_nums = Vec::new();
        let mut global = Vec::with_capacity(texts.len());
        let mut fits = true;
        for &t in texts {
            if let Some(&i) = self.index.get(t) {
                global.push(i);
                continue;
            }
            let value = label::parse(t);
            match &value {
                None => self.some_text = true,
                Some(v) => {
                    if self.nums.insert(v.clone()) {
                        new_nums.push(v.clone());
                    }
                }
            }
            let i = self.texts.len() as u32;
            self.texts.push((t.to_string(), value));
            self.index.insert(t.to_string(), i);
            global.push(i);
            let classes = if self.some_text {
                self.texts.len()
            } else {
                self.nums.len()
            };
            if classes > MAX_CLASSES {
                fits = false;
                break;
            }
        }
        if !fits {
            for (t, _) in self.texts.drain(old_texts..) {
                self.index.remove(&t);
            }
            for v in &new_nums {
                self.nums.remove(v);
            }
            self.some_text = old_some_text;
            return false;
        }
        self.rows.extend(rows.iter().map(|&r| global[r as usize]));
        true
    }

    fn too_many(&self, name: &str, column: &str, line: u64) -> Error {
        let shown: Vec<String> = self
            .texts
            .iter()
            .take(SHOWN)
            .map(|c| format!("\"{}\"", c.0))
            .collect();
        Error::Data {
            path: name.into(),
            line: Some(line),
            column: None,
            msg: format!(
                "the label column \"{column}\" has more than {MAX_CLASSES} distinct values ({}, ...); a model has at most {MAX_CLASSES} classes (pick the label with --label)",
                shown.join(", ")
            ),
        }
    }

    /// Maps the rows to class indices. `positive` (two classes only) names class 1.
    pub(super) fn finish(
        self,
        name: &str,
        column: &str,
        positive: Option<&str>,
    ) -> Result<(Vec<f32>, LabelMapping)> {
        let numeric = !self.some_text;
        // Each class's value as first written, in class order.
        let mut classes: Vec<String> = Vec::new();
        let mut class_of_text = vec![0usize; self.texts.len()];
        if numeric {
            let mut order: Vec<(&Decimal, usize)> = Vec::new();
            let mut seen: HashMap<&Decimal, usize> = HashMap::new();
            for (i, (_, v)) in self.texts.iter().enumerate() {
                let v = v.as_ref().expect("numeric labels parse");
                let c = *seen.entry(v).or_insert_with(|| {
                    order.push((v, i));
                    order.len() - 1
                });
                class_of_text[i] = c;
            }
            let mut sorted: Vec<usize> = (0..order.len()).collect();
            sorted.sort_by(|&a, &b| order[a].0.cmp(order[b].0));
            let mut rank = vec![0usize; order.len()];
            for (r, &c) in sorted.iter().enumerate() {
                rank[c] = r;
                classes.push(self.texts[order[c].1].0.clone());
            }
            for c in &mut class_of_text {
                *c = rank[*c];
            }
        } else {
            let mut sorted: Vec<usize> = (0..self.texts.len()).collect();
            sorted.sort_by(|&a, &b| self.texts[a].0.cmp(&self.texts[b].0));
            for (r, &i) in sorted.iter().enumerate() {
                class_of_text[i] = r;
                classes.push(self.texts[i].0.clone());
            }
        }
        match classes.len() {
            0 => return Err(Error::data(name, "no data rows after the header")),
            1 => {
                return Err(Error::data(
                    name,
                    format!(
                        "the label column \"{column}\" has only one distinct value (\"{}\"); a classifier needs at least two",
                        classes[0]
                    ),
                ));
            }
            _ => {}
        }
        let mut swap = false;
        if let Some(p) = positive {
            let pv = label::parse(p);
            let at = classes
                .iter()
                .position(|c| c == p || (numeric && pv.is_some() && label::parse(c) == pv));
            match (classes.len(), at) {
                (2, Some(i)) => swap = i == 0,
                (2, None) => {
                    return Err(Error::Config(format!(
                        "--positive {p}: the label column \"{column}\" holds \"{}\" and \"{}\", not \"{p}\"",
                        classes[0], classes[1]
                    )));
                }
                (k, _) => {
                    return Err(Error::Config(format!(
                        "--positive {p}: applies to two-class labels; the label column \"{column}\" has {k} classes"
                    )));
                }
            }
        }
        if swap {
            classes.swap(0, 1);
        }
        let y = self
            .rows
            .iter()
            .map(|&t| {
                let c = class_of_text[t as usize];
                (if swap { 1 - c } else { c }) as f32
            })
            .collect();
        Ok((
            y,
            LabelMapping {
                column: column.to_string(),
                classes,
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
        assert_eq!((d.label.positive(), d.label.negative()), ("1", "0"));
        // Spellings of one number are distinct texts once a label is not a number.
        let d = parse("a,y\n1,1\n2,1.0\n3,x\n", &CsvOptions::default()).unwrap();
        assert_eq!(d.label.classes, ["1", "1.0", "x"]);
        assert_eq!(d.y, vec![0.0, 1.0, 2.0]);
        // 2^53 and 2^53 + 1 are two classes.
        let d = parse(
            "a,y\n1,5\n2,9007199254740992\n3,9007199254740993\n4,5.0\n",
            &CsvOptions::default(),
        )
        .unwrap();
        assert_eq!(
            d.label.classes,
            ["5", "9007199254740992", "9007199254740993"]
        );
        assert_eq!(d.y, vec![0.0, 1.0, 2.0, 0.0]);
        let text = "a,y\n1,-100000000000000000001\n2,-100000000000000000000\n";
        let d = parse(text, &CsvOptions::default()).unwrap();
        assert_eq!(d.y, vec![0.0, 1.0]);
        let opts = CsvOptions {
            positive: Some("-1.00000000000000000001e20".into()),
            ..Default::default()
        };
        assert_eq!(parse(text, &opts).unwrap().y, vec![1.0, 0.0]);
        // Numbers ascend by value, whatever their order of appearance.
        let rows: String = (0..12).map(|i| format!("{i},{}\n", 11 - i)).collect();
        let d = parse(&format!("a,y\n{rows}"), &CsvOptions::default()).unwrap();
        let want: Vec<String> = (0..12).map(|i| i.to_string()).collect();
        assert_eq!(d.label.classes, want);
        assert_eq!(d.y[0], 11.0);
        // --positive names one of two classes only.
        let opts = CsvOptions {
            positive: Some("3".into()),
            ..Default::default()
        };
        let e = err(&format!("a,y\n{rows}"), &opts);
        assert!(
            e.contains("--positive 3: applies to two-class labels"),
            "{e}"
        );
        assert!(e.contains("has 12 classes"), "{e}");
    }

    #[test]
    fn numeric_labels_larger_is_positive() {
        let d = parse("a,b,y\n1,2,-1\n3,4,1\n5,6,-1\n", &CsvOptions::default()).unwrap();
        assert_eq!(d.y, vec![0.0, 1.0, 0.0]);
        assert_eq!(d.label.positive(), "1");
        assert_eq!(d.label.negative(), "-1");
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
        assert_eq!(d.label.negative(), "M");
    }
}
