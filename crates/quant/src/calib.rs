//! Calibration data from CSV text, and the held-out check of a quantized model against its
//! float graph: what `opal model quantize` reads and reports.
//!
//! The CSV has a header line; every other non-empty line is one row of numbers, as many as the
//! header names. A label column (named, or `label` when present) is not an input: it scores the
//! held-out rows. With `holdout_every = N`, rows `i` with `i % N == N - 1` are held out (not
//! used to calibrate).

use crate::{argmax, FloatGraph, QuantError, QuantModel};

/// Rows read from calibration CSV text.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Calibration {
    /// Input rows used to choose scales.
    pub rows: Vec<Vec<f32>>,
    /// Held-out input rows, each with its label when the CSV has a label column.
    pub held_out: Vec<(Vec<f32>, Option<f32>)>,
}

/// Why CSV text is not calibration data (row numbers count data rows from 1).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CsvError {
    #[error("no header line")]
    Empty,
    #[error("label column {0:?}: no such column in the header")]
    NoLabelColumn(String),
    #[error("holdout_every must be at least 1")]
    ZeroHoldout,
    #[error("row {row}: {why}")]
    NotANumber { row: usize, why: String },
    #[error("row {row}: {got} values, the header has {want}")]
    Width { row: usize, got: usize, want: usize },
}

impl Calibration {
    pub fn from_csv(
        text: &str,
        label_column: Option<&str>,
        holdout_every: Option<usize>,
    ) -> Result<Calibration, CsvError> {
        let mut lines = text.lines().filter(|l| !l.trim().is_empty());
        let header: Vec<&str> = lines
            .next()
            .ok_or(CsvError::Empty)?
            .split(',')
            .map(str::trim)
            .collect();
        let label = match label_column {
            Some(name) => Some(
                header
                    .iter()
                    .position(|h| *h == name)
                    .ok_or_else(|| CsvError::NoLabelColumn(name.into()))?,
            ),
            None => header.iter().position(|h| *h == "label"),
        };
        if holdout_every == Some(0) {
            return Err(CsvError::ZeroHoldout);
        }
        let mut c = Calibration::default();
        for (i, line) in lines.enumerate() {
            let row = i + 1;
            let vals = line
                .split(',')
                .map(|v| v.trim().parse::<f32>())
                .collect::<Result<Vec<f32>, _>>()
                .map_err(|e| CsvError::NotANumber {
                    row,
                    why: e.to_string(),
                })?;
            if vals.len() != header.len() {
                return Err(CsvError::Width {
                    row,
                    got: vals.len(),
                    want: header.len(),
                });
            }
            let x: Vec<f32> = vals
                .iter()
                .enumerate()
                .filter(|(k, _)| Some(*k) != label)
                .map(|(_, v)| *v)
                .collect();
            match holdout_every {
                Some(n) if i % n == n - 1 => c.held_out.push((x, label.map(|l| vals[l]))),
                _ => c.rows.push(x),
            }
        }
        Ok(c)
    }

    /// Accuracy of the float graph and of the quantized model on the labelled held-out rows,
    /// and how often they agree; `None` when no held-out row has a label.
    pub fn holdout(
        &self,
        graph: &FloatGraph,
        model: &QuantModel,
    ) -> Result<Option<Holdout>, QuantError> {
        let labelled: Vec<_> = self
            .held_out
            .iter()
            .filter_map(|(x, l)| l.map(|l| (x, l)))
            .collect();
        if labelled.is_empty() {
            return Ok(None);
        }
        let (mut f_ok, mut q_ok, mut agree) = (0usize, 0usize, 0usize);
        for (x, l) in &labelled {
            let fl = graph
                .forward(x)
                .iter()
                .enumerate()
                .max_by(|a, b| a.1.total_cmp(b.1).then(b.0.cmp(&a.0)))
                .map(|(i, _)| i);
            let ql = argmax(&model.run(&model.input_from_f32(x)?)?);
            f_ok += usize::from(fl.map(|i| i as f32) == Some(*l));
            q_ok += usize::from(ql.map(|i| i as f32) == Some(*l));
            agree += usize::from(fl == ql);
        }
        let n = labelled.len() as f64;
        Ok(Some(Holdout {
            rows: labelled.len(),
            float_accuracy: f_ok as f64 / n,
            canonical_accuracy: q_ok as f64 / n,
            label_agreement: agree as f64 / n,
        }))
    }
}

/// The held-out check of a quantized model.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Holdout {
    pub rows: usize,
    pub float_accuracy: f64,
    pub canonical_accuracy: f64,
    /// How often the float graph's and the quantized model's top class agree.
    pub label_agreement: f64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_labels_and_holdout() {
        let c = Calibration::from_csv("a,b,label\n1,2,0\n\n3,4,1\n5,6,0\n", None, Some(2)).unwrap();
        assert_eq!(c.rows, vec![vec![1.0, 2.0], vec![5.0, 6.0]]);
        assert_eq!(c.held_out, vec![(vec![3.0, 4.0], Some(1.0))]);
        let c = Calibration::from_csv("a,y\n1,2\n", Some("a"), None).unwrap();
        assert_eq!(c.rows, vec![vec![2.0]]);
    }

    #[test]
    fn bad_csv_is_a_typed_error() {
        assert_eq!(Calibration::from_csv("", None, None), Err(CsvError::Empty));
        assert_eq!(
            Calibration::from_csv("a\n1\n", Some("z"), None),
            Err(CsvError::NoLabelColumn("z".into()))
        );
        assert_eq!(
            Calibration::from_csv("a\n1\n", None, Some(0)),
            Err(CsvError::ZeroHoldout)
        );
        assert!(matches!(
            Calibration::from_csv("a,b\n1,x\n", None, None),
            Err(CsvError::NotANumber { row: 1, .. })
        ));
        assert_eq!(
            Calibration::from_csv("a,b\n1,2\n3\n", None, None),
            Err(CsvError::Width {
                row: 2,
                got: 1,
                want: 2
            })
        );
    }
}
