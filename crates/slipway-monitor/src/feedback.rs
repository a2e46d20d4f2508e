//! Ground truth: batches of `{"request_id", "label" | "value"}` stored as
//! Parquet next to the prediction log, joined with the logged predictions
//! by request id (and row, for batch requests) when performance is asked
//! for. Feedback may arrive any time after the prediction; the latest
//! feedback for a row wins.

use crate::columns::{Side, SIDE_KEY};
use crate::files::{self, DataFile, Skipped, FEEDBACK};
use crate::frame::{self, cell, Cell};
use arrow_array::builder::{
    Float64Builder, Int32Builder, StringBuilder, TimestampMicrosecondBuilder,
};
use arrow_array::{ArrayRef, RecordBatch};
use arrow_schema::{DataType, Field, Schema, TimeUnit};
use serde::Serialize;
use serde_json::Value;
use slipway_artifacts::ArtifactStore;
use slipway_core::Error;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

/// Most feedback items in one request.
pub const MAX_BATCH: usize = 100_000;
/// Unknown ids listed in a receipt.
const LISTED_UNKNOWN: usize = 100;
/// Classes per version with precision and recall gauges: those with the
/// most support (true rows), so that labels sent as feedback cannot grow
/// the metrics without bound.
pub const MAX_CLASS_GAUGES: usize = 32;

/// One piece of ground truth.
#[derive(Debug, Clone, PartialEq)]
pub struct Feedback {
    /// The prediction's request id (its `x-request-id`).
    pub request_id: String,
    /// Row of the request (0 for single-row requests).
    pub row: i32,
    /// The true label (classifiers), as text.
    pub label: Option<String>,
    /// The true value (regressors).
    pub value: Option<f64>,
}

/// Parses `[{"request_id": ..., "label": ...}, ...]` or `{"feedback": [...]}`.
pub fn parse(body: &[u8]) -> Result<Vec<Feedback>, Error> {
    let v: Value = serde_json::from_slice(body)
        .map_err(|e| Error::invalid(format!("The body is not valid JSON: {e}")))?;
    let items = match v {
        Value::Array(a) => a,
        Value::Object(mut o) => match o.remove("feedback") {
            Some(Value::Array(a)) if o.is_empty() => a,
            Some(Value::Array(_)) => {
                let extra: Vec<String> = o.keys().cloned().collect();
                return Err(Error::invalid(format!(
                    "Unknown field(s) beside 'feedback': {}",
                    extra.join(", ")
                )));
            }
            _ => {
                return Err(Error::invalid(
                    "Send a list of {\"request_id\": ..., \"label\": ...} (or \"value\" for regression), or {\"feedback\": [...]}",
                ))
            }
        },
        _ => {
            return Err(Error::invalid(
                "Send a list of {\"request_id\": ..., \"label\": ...} (or \"value\" for regression), or {\"feedback\": [...]}",
            ))
        }
    };
    if items.is_empty() {
        return Err(Error::invalid("The feedback list is empty"));
    }
    if items.len() > MAX_BATCH {
        return Err(Error::invalid(format!(
            "At most {MAX_BATCH} feedback items per request, got {}",
            items.len()
        )));
    }
    items
        .into_iter()
        .enumerate()
        .map(|(i, item)| parse_item(i, item))
        .collect()
}

fn parse_item(i: usize, item: Value) -> Result<Feedback, Error> {
    let f = |field: &str, msg: &str| Error::invalid(format!("Field 'feedback[{i}].{field}' {msg}"));
    let Value::Object(o) = item else {
        return Err(Error::invalid(format!(
            "Item feedback[{i}] must be an object like {{\"request_id\": \"…\", \"label\": \"setosa\"}}"
        )));
    };
    let mut fb = Feedback {
        request_id: String::new(),
        row: 0,
        label: None,
        value: None,
    };
    let mut has_id = false;
    for (k, v) in o {
        match k.as_str() {
            "request_id" => match v {
                Value::String(s) if !s.is_empty() && s.len() <= 256 => {
                    fb.request_id = s;
                    has_id = true;
                }
                Value::String(_) => return Err(f("request_id", "must be 1 to 256 characters")),
                other => {
                    return Err(f(
                        "request_id",
                        &format!("must be a string (the x-request-id of the prediction), got {}", kind(&other)),
                    ))
                }
            },
            "row" => match v.as_u64() {
                Some(n) if n <= i32::MAX as u64 => fb.row = n as i32,
                _ => return Err(f("row", "must be a non-negative integer (the row of a batch request)")),
            },
            "label" => {
                fb.label = Some(match v {
                    Value::String(s) => s,
                    Value::Bool(b) => b.to_string(),
                    Value::Number(n) => match (n.as_i64(), n.as_f64()) {
                        (Some(x), _) => x.to_string(),
                        (None, Some(x)) if x.fract() == 0.0 && x.abs() < 9e15 => (x as i64).to_string(),
                        _ => {
                            return Err(f(
                                "label",
                                "must be a string, an integer or a boolean; send real-valued truth as 'value'",
                            ))
                        }
                    },
                    other => {
                        return Err(f(
                            "label",
                            &format!("must be a string, an integer or a boolean, got {}", kind(&other)),
                        ))
                    }
                })
            }
            "value" => match v.as_f64() {
                Some(x) if x.is_finite() => fb.value = Some(x),
                _ => return Err(f("value", &format!("must be a finite number, got {}", kind(&v)))),
            },
            other => {
                return Err(Error::invalid(format!(
                    "Unknown field 'feedback[{i}].{other}': expected request_id, label or value, and row"
                )))
            }
        }
    }
    if !has_id {
        return Err(f("request_id", "is required"));
    }
    match (&fb.label, fb.value) {
        (None, None) => Err(Error::invalid(format!(
            "Item feedback[{i}] needs 'label' (classification) or 'value' (regression)"
        ))),
        (Some(_), Some(_)) => Err(Error::invalid(format!(
            "Item feedback[{i}] has both 'label' and 'value'; send one"
        ))),
        _ => Ok(fb),
    }
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

/// Stores a batch as one Parquet file.
pub async fn store(
    store: &ArtifactStore,
    deployment: &str,
    items: &[Feedback],
) -> Result<(), Error> {
    let now = crate::monitor::now_ms();
    let n = items.len();
    let mut time = TimestampMicrosecondBuilder::with_capacity(n).with_timezone("UTC");
    let mut id = StringBuilder::with_capacity(n, n * 16);
    let mut row = Int32Builder::with_capacity(n);
    let mut label = StringBuilder::with_capacity(n, n * 4);
    let mut value = Float64Builder::with_capacity(n);
    for f in items {
        time.append_value(now * 1000);
        id.append_value(&f.request_id);
        row.append_value(f.row);
        label.append_option(f.label.as_deref());
        value.append_option(f.value);
    }
    let schema = Schema::new(vec![
        Field::new(
            "time",
            DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            false,
        ),
        Field::new("request_id", DataType::Utf8, false),
        Field::new("row", DataType::Int32, false),
        Field::new("label", DataType::Utf8, true),
        Field::new("value", DataType::Float64, true),
    ]);
    let arrays: Vec<ArrayRef> = vec![
        Arc::new(time.finish()),
        Arc::new(id.finish()),
        Arc::new(row.finish()),
        Arc::new(label.finish()),
        Arc::new(value.finish()),
    ];
    let batch = RecordBatch::try_new(Arc::new(schema), arrays)
        .map_err(|e| Error::internal(e.to_string()))?;
    let bytes = files::to_parquet(&batch).map_err(Error::internal)?;
    let (date, hour) = files::partition(now);
    let path = format!(
        "{FEEDBACK}/deployment={deployment}/date={date}/hour={hour}/{}",
        files::file_name(now, now)
    );
    files::put(store, &path, bytes).await
}

/// What happened to a batch.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct FeedbackReceipt {
    /// Items received and stored.
    pub received: u64,
    /// Items whose request id is in the prediction log.
    pub matched: u64,
    /// Items whose request id is not (yet): stored anyway, joined later if
    /// the prediction shows up.
    pub unknown: u64,
    /// The first unknown ids.
    pub unknown_request_ids: Vec<String>,
}

/// Looks the batch's request ids up in `found` (newest first), stopping
/// once every id was seen.
pub async fn match_ids(
    store: &ArtifactStore,
    found: &[DataFile],
    items: &[Feedback],
) -> FeedbackReceipt {
    let mut wanted: HashSet<&str> = items.iter().map(|f| f.request_id.as_str()).collect();
    for f in found.iter().rev() {
        if wanted.is_empty() {
            break;
        }
        let Ok(batches) = files::read_file(store, f, Some(vec!["request_id".to_string()])).await
        else {
            continue;
        };
        for b in &batches {
            if let Some(col) = b.column_by_name("request_id") {
                for r in 0..b.num_rows() {
                    if let Cell::Str(s) = cell(col.as_ref(), r) {
                        wanted.remove(s.as_str());
                    }
                }
            }
        }
    }
    let unknown: Vec<&Feedback> = items
        .iter()
        .filter(|f| wanted.contains(f.request_id.as_str()))
        .collect();
    let mut listed: Vec<String> = Vec::new();
    for f in &unknown {
        if listed.len() >= LISTED_UNKNOWN {
            break;
        }
        if !listed.contains(&f.request_id) {
            listed.push(f.request_id.clone());
        }
    }
    FeedbackReceipt {
        received: items.len() as u64,
        matched: (items.len() - unknown.len()) as u64,
        unknown: unknown.len() as u64,
        unknown_request_ids: listed,
    }
}

/// One class of a classifier's report.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ClassReport {
    /// The label.
    pub label: String,
    /// Of rows predicted as this label, the share that were.
    pub precision: f64,
    /// Of rows truly this label, the share predicted so.
    pub recall: f64,
    /// Harmonic mean of the two.
    pub f1: f64,
    /// Rows truly this label.
    pub support: u64,
}

/// One version's performance.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct VersionPerformance {
    /// Version.
    pub version: String,
    /// `classification` or `regression`.
    pub task: &'static str,
    /// The output compared.
    pub prediction_output: String,
    /// Predictions with ground truth.
    pub joined: u64,
    /// Share of correct labels.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub accuracy: Option<f64>,
    /// Per class.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub classes: Option<Vec<ClassReport>>,
    /// Mean absolute error.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mae: Option<f64>,
    /// Root mean squared error.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rmse: Option<f64>,
    /// Joined rows whose truth had the wrong type for the task (a label for
    /// a regressor that is not a number).
    pub mismatched: u64,
}

/// `GET /api/v1/deployments/{name}/performance`.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct PerformanceReport {
    /// Deployment.
    pub deployment: String,
    /// Window start (RFC 3339): predictions made since.
    pub start: String,
    /// Window end.
    pub end: String,
    /// Per version.
    pub versions: Vec<VersionPerformance>,
    /// Feedback rows received since the window started.
    pub feedback_rows: u64,
    /// Of those, rows that matched no prediction in the window.
    pub unmatched_feedback: u64,
    /// Files that could not be read.
    pub skipped_files: Vec<Skipped>,
}

#[derive(Default)]
struct Acc {
    output: String,
    regression: bool,
    joined: u64,
    correct: u64,
    mismatched: u64,
    predicted: BTreeMap<String, u64>,
    actual: BTreeMap<String, u64>,
    hits: BTreeMap<String, u64>,
    abs: f64,
    sq: f64,
}

/// The output compared with the truth: `preferred` if the file has it,
/// else `label`, else the first output holding one value per row, else
/// the first output.
fn prediction_column(schema: &Schema, preferred: Option<&str>) -> Option<(usize, bool)> {
    let outputs: Vec<(usize, &Field)> = schema
        .fields()
        .iter()
        .enumerate()
        .filter(|(_, f)| {
            f.metadata().get(SIDE_KEY).and_then(|s| Side::parse(s)) == Some(Side::Output)
        })
        .map(|(i, f)| (i, f.as_ref()))
        .collect();
    let pick = preferred
        .and_then(|p| outputs.iter().find(|(_, f)| f.name() == p))
        .or_else(|| outputs.iter().find(|(_, f)| f.name() == "label"))
        .or_else(|| outputs.iter().find(|(_, f)| !f.name().contains('[')))
        .or_else(|| outputs.first())?;
    let regression = matches!(pick.1.data_type(), DataType::Float32 | DataType::Float64);
    Some((pick.0, regression))
}

/// Joins feedback with predictions in `window` and scores each version.
pub async fn performance(
    store: &ArtifactStore,
    deployment: &str,
    predictions: &[DataFile],
    feedback: &[DataFile],
    preferred: Option<&str>,
    window: (i64, i64),
) -> Result<PerformanceReport, Error> {
    let mut skipped = Vec::new();
    // the truth: (request id, row) -> (label, value); later files win
    let mut truth: HashMap<(String, i32), (Option<String>, Option<f64>)> = HashMap::new();
    let mut feedback_rows = 0u64;
    for f in feedback {
        match files::read_file(store, f, None).await {
            Ok(batches) => {
                for b in &batches {
                    let (Some(id), Some(row)) =
                        (b.column_by_name("request_id"), b.column_by_name("row"))
                    else {
                        continue;
                    };
                    let label = b.column_by_name("label");
                    let value = b.column_by_name("value");
                    for r in 0..b.num_rows() {
                        let Cell::Str(id) = cell(id.as_ref(), r) else {
                            continue;
                        };
                        let row = match cell(row.as_ref(), r) {
                            Cell::Int(x) => x as i32,
                            _ => 0,
                        };
                        let l = label.and_then(|c| match cell(c.as_ref(), r) {
                            Cell::Null => None,
                            c => Some(frame::text(&c)),
                        });
                        let v = value.and_then(|c| frame::as_f64(&cell(c.as_ref(), r)));
                        feedback_rows += 1;
                        truth.insert((id, row), (l, v));
                    }
                }
            }
            Err(s) => skipped.push(s),
        }
    }
    let mut used: HashSet<(String, i32)> = HashSet::new();
    let mut per_version: BTreeMap<String, Acc> = BTreeMap::new();
    for f in predictions {
        let batches = match files::read_file(store, f, None).await {
            Ok(b) => b,
            Err(s) => {
                skipped.push(s);
                continue;
            }
        };
        for b in &batches {
            let schema = b.schema();
            let Some((pc, regression)) = prediction_column(&schema, preferred) else {
                continue;
            };
            let (Some(id), Some(row), Some(status), Some(time)) = (
                b.column_by_name("request_id"),
                b.column_by_name("row"),
                b.column_by_name("status"),
                b.column_by_name("time"),
            ) else {
                continue;
            };
            let version = f.version.clone().unwrap_or_default();
            let acc = per_version.entry(version).or_insert_with(|| Acc {
                output: schema.field(pc).name().clone(),
                regression,
                ..Acc::default()
            });
            let pred = b.column(pc);
            for r in 0..b.num_rows() {
                if cell(status.as_ref(), r) != Cell::Int(200) {
                    continue;
                }
                match cell(time.as_ref(), r) {
                    Cell::Time(us) if us / 1000 >= window.0 && us / 1000 < window.1 => {}
                    _ => continue,
                }
                let Cell::Str(rid) = cell(id.as_ref(), r) else {
                    continue;
                };
                let rrow = match cell(row.as_ref(), r) {
                    Cell::Int(x) => x as i32,
                    _ => 0,
                };
                let key = (rid, rrow);
                let Some((label, value)) = truth.get(&key) else {
                    continue;
                };
                let p = cell(pred.as_ref(), r);
                if p == Cell::Null {
                    continue;
                }
                used.insert(key);
                acc.joined += 1;
                if acc.regression {
                    let t = value.or_else(|| label.as_ref().and_then(|l| l.parse::<f64>().ok()));
                    match (t, frame::as_f64(&p)) {
                        (Some(t), Some(y)) => {
                            acc.abs += (y - t).abs();
                            acc.sq += (y - t) * (y - t);
                        }
                        _ => acc.mismatched += 1,
                    }
                } else {
                    let t = label
                        .clone()
                        .or_else(|| value.map(|v| frame::text(&Cell::Float(v))));
                    let Some(t) = t else {
                        acc.mismatched += 1;
                        continue;
                    };
                    let y = frame::text(&p);
                    *acc.predicted.entry(y.clone()).or_default() += 1;
                    *acc.actual.entry(t.clone()).or_default() += 1;
                    if y == t {
                        acc.correct += 1;
                        *acc.hits.entry(t).or_default() += 1;
                    }
                }
            }
        }
    }
    let versions = per_version
        .into_iter()
        .map(|(version, a)| {
            let scored = a.joined - a.mismatched;
            if a.regression {
                VersionPerformance {
                    version,
                    task: "regression",
                    prediction_output: a.output,
                    joined: a.joined,
                    accuracy: None,
                    classes: None,
                    mae: (scored > 0).then(|| a.abs / scored as f64),
                    rmse: (scored > 0).then(|| (a.sq / scored as f64).sqrt()),
                    mismatched: a.mismatched,
                }
            } else {
                let mut labels: Vec<&String> = a.actual.keys().chain(a.predicted.keys()).collect();
                labels.sort();
                labels.dedup();
                let classes = labels
                    .into_iter()
                    .map(|l| {
                        let tp = a.hits.get(l).copied().unwrap_or(0) as f64;
                        let pred = a.predicted.get(l).copied().unwrap_or(0) as f64;
                        let act = a.actual.get(l).copied().unwrap_or(0);
                        let precision = if pred > 0.0 { tp / pred } else { 0.0 };
                        let recall = if act > 0 { tp / act as f64 } else { 0.0 };
                        let f1 = if precision + recall > 0.0 {
                            2.0 * precision * recall / (precision + recall)
                        } else {
                            0.0
                        };
                        ClassReport {
                            label: l.clone(),
                            precision,
                            recall,
                            f1,
                            support: act,
                        }
                    })
                    .collect();
                VersionPerformance {
                    version,
                    task: "classification",
                    prediction_output: a.output,
                    joined: a.joined,
                    accuracy: (scored > 0).then(|| a.correct as f64 / scored as f64),
                    classes: Some(classes),
                    mae: None,
                    rmse: None,
                    mismatched: a.mismatched,
                }
            }
        })
        .collect();
    Ok(PerformanceReport {
        deployment: deployment.to_string(),
        start: frame::rfc3339(window.0 * 1000),
        end: frame::rfc3339(window.1 * 1000),
        versions,
        feedback_rows,
        unmatched_feedback: truth.keys().filter(|k| !used.contains(*k)).count() as u64,
        skipped_files: skipped,
    })
}

/// Sets the accuracy or error gauges of every version in the report, and
/// the precision and recall of its [`MAX_CLASS_GAUGES`] best-supported
/// classes.
pub fn set_gauges(p: &PerformanceReport) {
    for v in &p.versions {
        let labels = [
            ("deployment", p.deployment.clone()),
            ("version", v.version.clone()),
        ];
        metrics::gauge!("slipway_feedback_joined_rows", &labels).set(v.joined as f64);
        if let Some(a) = v.accuracy {
            metrics::gauge!("slipway_model_accuracy", &labels).set(a);
        }
        if let Some(x) = v.mae {
            metrics::gauge!("slipway_model_mae", &labels).set(x);
        }
        if let Some(x) = v.rmse {
            metrics::gauge!("slipway_model_rmse", &labels).set(x);
        }
        for c in gauged_classes(v.classes.as_deref().unwrap_or_default()) {
            let labels = [
                ("deployment", p.deployment.clone()),
                ("version", v.version.clone()),
                ("class", c.label.clone()),
            ];
            metrics::gauge!("slipway_model_precision", &labels).set(c.precision);
            metrics::gauge!("slipway_model_recall", &labels).set(c.recall);
        }
    }
}

/// The classes that get gauges: at most [`MAX_CLASS_GAUGES`], most
/// support first (ties by label).
pub fn gauged_classes(classes: &[ClassReport]) -> Vec<&ClassReport> {
    let mut picked: Vec<&ClassReport> = classes.iter().collect();
    picked.sort_by(|a, b| {
        b.support
            .cmp(&a.support)
            .then_with(|| a.label.cmp(&b.label))
    });
    picked.truncate(MAX_CLASS_GAUGES);
    picked
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn class_gauges_are_bounded_and_keep_the_best_supported() {
        let classes: Vec<ClassReport> = (0..100u64)
            .map(|i| ClassReport {
                label: format!("c{i:03}"),
                precision: 0.5,
                recall: 0.5,
                f1: 0.5,
                support: i % 50,
            })
            .collect();
        let picked = gauged_classes(&classes);
        assert_eq!(picked.len(), MAX_CLASS_GAUGES);
        assert!(picked.iter().all(|c| c.support >= 34), "{picked:?}");
        assert_eq!(
            (picked[0].label.as_str(), picked[1].label.as_str()),
            ("c049", "c099")
        );
        assert_eq!(gauged_classes(&classes[..3]).len(), 3);
    }

    #[test]
    fn feedback_items_are_checked_field_by_field() {
        let ok = parse(br#"[{"request_id": "a", "label": "setosa"}, {"request_id": "b", "label": 2, "row": 3}, {"request_id": "c", "value": 1.5}]"#).unwrap();
        assert_eq!(ok[1].label.as_deref(), Some("2"));
        assert_eq!(ok[1].row, 3);
        assert_eq!(ok[2].value, Some(1.5));
        let wrapped = parse(br#"{"feedback": [{"request_id": "a", "label": 1.0}]}"#).unwrap();
        assert_eq!(wrapped[0].label.as_deref(), Some("1"));
        for (body, want) in [
            (
                &br#"[{"request_id": 5, "label": "x"}]"#[..],
                "feedback[0].request_id",
            ),
            (br#"[{"request_id": "a"}]"#, "needs 'label'"),
            (
                br#"[{"request_id": "a", "label": "x", "value": 1}]"#,
                "both",
            ),
            (
                br#"[{"request_id": "a", "label": [1]}]"#,
                "feedback[0].label",
            ),
            (
                br#"[{"request_id": "a", "value": "x"}]"#,
                "feedback[0].value",
            ),
            (
                br#"[{"request_id": "a", "label": "x"}, {"request_id": "b", "lable": "x"}]"#,
                "feedback[1].lable",
            ),
            (
                br#"[{"request_id": "a", "label": "x", "row": -1}]"#,
                "feedback[0].row",
            ),
            (br#"[]"#, "empty"),
            (br#"{"items": []}"#, "Send a list"),
            (br#"nope"#, "not valid JSON"),
        ] {
            let e = parse(body).unwrap_err();
            assert!(
                e.message.contains(want),
                "{}: {}",
                String::from_utf8_lossy(body),
                e.message
            );
        }
    }
}
