//! A small column table for reading the log back: record batches of files
//! with different columns (versions with other signatures) unioned by name,
//! rows filtered and cut, and written out as JSON, CSV or Parquet. Also
//! CSV input (reference uploads) turned into a batch.

use crate::files::to_parquet;
use arrow_array::builder::{
    BooleanBuilder, Float64Builder, Int64Builder, StringBuilder, TimestampMicrosecondBuilder,
};
use arrow_array::cast::AsArray;
use arrow_array::types::{
    Float32Type, Float64Type, Int16Type, Int32Type, Int64Type, Int8Type, TimestampMicrosecondType,
    TimestampMillisecondType, TimestampNanosecondType, TimestampSecondType, UInt16Type, UInt32Type,
    UInt64Type, UInt8Type,
};
use arrow_array::{Array, ArrayRef, RecordBatch};
use arrow_schema::{DataType, Field, Schema, TimeUnit};
use serde_json::{Map, Value};
use std::collections::HashMap;
use std::sync::Arc;

/// One cell.
#[derive(Debug, Clone, PartialEq)]
pub enum Cell {
    /// Missing.
    Null,
    /// A time, µs since the epoch (UTC).
    Time(i64),
    /// A floating-point number.
    Float(f64),
    /// A single-precision number (shown in its shortest form, computed
    /// with exactly).
    F32(f32),
    /// An integer.
    Int(i64),
    /// A boolean.
    Bool(bool),
    /// Text.
    Str(String),
}

/// The kind of a column, decided by its first file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Timestamps.
    Time,
    /// Floats.
    Float,
    /// Integers.
    Int,
    /// Booleans.
    Bool,
    /// Text.
    Str,
}

/// Reads cell `i` of an Arrow array of a supported type.
pub fn cell(a: &dyn Array, i: usize) -> Cell {
    if a.is_null(i) {
        return Cell::Null;
    }
    match a.data_type() {
        DataType::Float32 => Cell::F32(a.as_primitive::<Float32Type>().value(i)),
        DataType::Float64 => Cell::Float(a.as_primitive::<Float64Type>().value(i)),
        DataType::Int8 => Cell::Int(i64::from(a.as_primitive::<Int8Type>().value(i))),
        DataType::Int16 => Cell::Int(i64::from(a.as_primitive::<Int16Type>().value(i))),
        DataType::Int32 => Cell::Int(i64::from(a.as_primitive::<Int32Type>().value(i))),
        DataType::Int64 => Cell::Int(a.as_primitive::<Int64Type>().value(i)),
        DataType::UInt8 => Cell::Int(i64::from(a.as_primitive::<UInt8Type>().value(i))),
        DataType::UInt16 => Cell::Int(i64::from(a.as_primitive::<UInt16Type>().value(i))),
        DataType::UInt32 => Cell::Int(i64::from(a.as_primitive::<UInt32Type>().value(i))),
        DataType::UInt64 => {
            Cell::Int(i64::try_from(a.as_primitive::<UInt64Type>().value(i)).unwrap_or(i64::MAX))
        }
        DataType::Boolean => Cell::Bool(a.as_boolean().value(i)),
        DataType::Utf8 => Cell::Str(a.as_string::<i32>().value(i).to_string()),
        DataType::LargeUtf8 => Cell::Str(a.as_string::<i64>().value(i).to_string()),
        DataType::Timestamp(unit, _) => Cell::Time(match unit {
            TimeUnit::Second => a.as_primitive::<TimestampSecondType>().value(i) * 1_000_000,
            TimeUnit::Millisecond => a.as_primitive::<TimestampMillisecondType>().value(i) * 1000,
            TimeUnit::Microsecond => a.as_primitive::<TimestampMicrosecondType>().value(i),
            TimeUnit::Nanosecond => a.as_primitive::<TimestampNanosecondType>().value(i) / 1000,
        }),
        _ => Cell::Null,
    }
}

/// The kind of an Arrow type, `None` when unsupported.
pub fn kind_of(t: &DataType) -> Option<Kind> {
    match t {
        DataType::Float16 | DataType::Float32 | DataType::Float64 => Some(Kind::Float),
        DataType::Int8
        | DataType::Int16
        | DataType::Int32
        | DataType::Int64
        | DataType::UInt8
        | DataType::UInt16
        | DataType::UInt32
        | DataType::UInt64 => Some(Kind::Int),
        DataType::Boolean => Some(Kind::Bool),
        DataType::Utf8 | DataType::LargeUtf8 => Some(Kind::Str),
        DataType::Timestamp(..) => Some(Kind::Time),
        _ => None,
    }
}

/// Rows of several batches with their columns unioned by name.
#[derive(Debug, Default)]
pub struct Frame {
    /// Column names and kinds, in first-seen order.
    pub columns: Vec<(String, Kind)>,
    index: HashMap<String, usize>,
    /// Rows, one cell per column (shorter rows: trailing nulls).
    pub rows: Vec<Vec<Cell>>,
}

impl Frame {
    /// Adds the rows of `batch` for which `keep(batch, row)` holds, up to
    /// `limit` rows in the frame; returns whether the limit cut it.
    pub fn extend(
        &mut self,
        batch: &RecordBatch,
        keep: impl Fn(&RecordBatch, usize) -> bool,
        limit: usize,
    ) -> bool {
        self.extend_with(batch, keep, limit, &[])
    }

    fn column(&mut self, name: &str, kind: Kind) -> usize {
        match self.index.get(name) {
            Some(i) => *i,
            None => {
                self.columns.push((name.to_string(), kind));
                self.index.insert(name.to_string(), self.columns.len() - 1);
                self.columns.len() - 1
            }
        }
    }

    /// [`Frame::extend`] with columns of one value for every row (the
    /// partition columns of the file the batch came from), placed first.
    pub fn extend_with(
        &mut self,
        batch: &RecordBatch,
        keep: impl Fn(&RecordBatch, usize) -> bool,
        limit: usize,
        constants: &[(&str, Cell)],
    ) -> bool {
        let fixed: Vec<(usize, Cell)> = constants
            .iter()
            .map(|(n, c)| (self.column(n, Kind::Str), c.clone()))
            .collect();
        let schema = batch.schema();
        let mut map = Vec::with_capacity(schema.fields().len());
        for f in schema.fields() {
            let Some(kind) = kind_of(f.data_type()) else {
                map.push(None);
                continue;
            };
            if constants.iter().any(|(n, _)| n == f.name()) {
                map.push(None);
                continue;
            }
            map.push(Some(self.column(f.name(), kind)));
        }
        for r in 0..batch.num_rows() {
            if !keep(batch, r) {
                continue;
            }
            if self.rows.len() >= limit {
                return true;
            }
            let mut row = vec![Cell::Null; self.columns.len()];
            for (c, v) in &fixed {
                row[*c] = v.clone();
            }
            for (c, target) in map.iter().enumerate() {
                if let Some(t) = target {
                    row[*t] = cell(batch.column(c).as_ref(), r);
                }
            }
            self.rows.push(row);
        }
        false
    }

    fn get<'a>(&'a self, row: &'a [Cell], c: usize) -> &'a Cell {
        row.get(c).unwrap_or(&Cell::Null)
    }

    /// Sorts rows by the column `name` (times, numbers or text).
    pub fn sort_by(&mut self, name: &str, descending: bool) {
        let Some(&c) = self.index.get(name) else {
            return;
        };
        self.rows.sort_by(|a, b| {
            let o = cmp(
                a.get(c).unwrap_or(&Cell::Null),
                b.get(c).unwrap_or(&Cell::Null),
            );
            if descending {
                o.reverse()
            } else {
                o
            }
        });
    }

    /// Keeps the first `n` rows; returns whether any were dropped.
    pub fn truncate(&mut self, n: usize) -> bool {
        let cut = self.rows.len() > n;
        self.rows.truncate(n);
        cut
    }

    /// The time (µs since the epoch) of the last row, when it has one.
    pub fn last_time(&self) -> Option<i64> {
        let c = *self.index.get("time")?;
        match self.get(self.rows.last()?, c) {
            Cell::Time(t) => Some(*t),
            _ => None,
        }
    }

    /// The rows as JSON objects (times as RFC 3339; NaN and infinities as
    /// strings, since JSON has no such numbers).
    pub fn to_json(&self) -> Vec<Value> {
        self.rows
            .iter()
            .map(|row| {
                let mut m = Map::new();
                for (c, (name, _)) in self.columns.iter().enumerate() {
                    m.insert(name.clone(), json_cell(self.get(row, c)));
                }
                Value::Object(m)
            })
            .collect()
    }

    /// The rows as CSV with a header row (RFC 4180 quoting).
    pub fn to_csv(&self) -> String {
        let mut out = String::new();
        let header: Vec<String> = self.columns.iter().map(|(n, _)| csv_field(n)).collect();
        out.push_str(&header.join(","));
        out.push_str("\r\n");
        for row in &self.rows {
            let fields: Vec<String> = (0..self.columns.len())
                .map(|c| match self.get(row, c) {
                    Cell::Null => String::new(),
                    Cell::Time(us) => rfc3339(*us),
                    Cell::Float(f) => format_float(*f),
                    Cell::F32(f) => format_f32(*f),
                    Cell::Int(i) => i.to_string(),
                    Cell::Bool(b) => b.to_string(),
                    Cell::Str(s) => csv_field(s),
                })
                .collect();
            out.push_str(&fields.join(","));
            out.push_str("\r\n");
        }
        out
    }

    /// The rows as one Parquet file.
    pub fn to_parquet(&self) -> Result<Vec<u8>, String> {
        let mut fields = Vec::new();
        let mut arrays: Vec<ArrayRef> = Vec::new();
        for (c, (name, kind)) in self.columns.iter().enumerate() {
            let n = self.rows.len();
            let cells = self.rows.iter().map(|r| self.get(r, c));
            let (t, a): (DataType, ArrayRef) = match kind {
                Kind::Time => {
                    let mut b = TimestampMicrosecondBuilder::with_capacity(n).with_timezone("UTC");
                    cells.for_each(|x| {
                        b.append_option(if let Cell::Time(v) = x {
                            Some(*v)
                        } else {
                            None
                        })
                    });
                    (
                        DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
                        Arc::new(b.finish()),
                    )
                }
                Kind::Float => {
                    let mut b = Float64Builder::with_capacity(n);
                    cells.for_each(|x| b.append_option(as_f64(x)));
                    (DataType::Float64, Arc::new(b.finish()))
                }
                Kind::Int => {
                    let mut b = Int64Builder::with_capacity(n);
                    cells.for_each(|x| {
                        b.append_option(if let Cell::Int(v) = x { Some(*v) } else { None })
                    });
                    (DataType::Int64, Arc::new(b.finish()))
                }
                Kind::Bool => {
                    let mut b = BooleanBuilder::with_capacity(n);
                    cells.for_each(|x| {
                        b.append_option(if let Cell::Bool(v) = x {
                            Some(*v)
                        } else {
                            None
                        })
                    });
                    (DataType::Boolean, Arc::new(b.finish()))
                }
                Kind::Str => {
                    let mut b = StringBuilder::with_capacity(n, n * 8);
                    cells.for_each(|x| match x {
                        Cell::Str(s) => b.append_value(s),
                        Cell::Null => b.append_null(),
                        other => b.append_value(text(other)),
                    });
                    (DataType::Utf8, Arc::new(b.finish()))
                }
            };
            fields.push(Field::new(name, t, true));
            arrays.push(a);
        }
        let batch = if fields.is_empty() {
            RecordBatch::new_empty(Arc::new(Schema::empty()))
        } else {
            RecordBatch::try_new(Arc::new(Schema::new(fields)), arrays)
                .map_err(|e| e.to_string())?
        };
        to_parquet(&batch)
    }
}

fn cmp(a: &Cell, b: &Cell) -> std::cmp::Ordering {
    use std::cmp::Ordering;
    match (a, b) {
        (Cell::Null, Cell::Null) => Ordering::Equal,
        (Cell::Null, _) => Ordering::Less,
        (_, Cell::Null) => Ordering::Greater,
        (Cell::Time(x), Cell::Time(y)) | (Cell::Int(x), Cell::Int(y)) => x.cmp(y),
        (Cell::Str(x), Cell::Str(y)) => x.cmp(y),
        _ => as_f64(a)
            .unwrap_or(f64::NAN)
            .total_cmp(&as_f64(b).unwrap_or(f64::NAN)),
    }
}

/// A cell as a number, when it is one.
pub fn as_f64(c: &Cell) -> Option<f64> {
    match c {
        Cell::Float(f) => Some(*f),
        Cell::F32(f) => Some(f64::from(*f)),
        Cell::Int(i) => Some(*i as f64),
        Cell::Bool(b) => Some(if *b { 1.0 } else { 0.0 }),
        Cell::Time(t) => Some(*t as f64),
        _ => None,
    }
}

/// A cell as text: how labels are compared (integers in decimal, floats
/// in their shortest form, booleans as `true`/`false`).
pub fn text(c: &Cell) -> String {
    match c {
        Cell::Null => String::new(),
        Cell::Time(t) => rfc3339(*t),
        Cell::Float(f) => format_float(*f),
        Cell::F32(f) => format_f32(*f),
        Cell::Int(i) => i.to_string(),
        Cell::Bool(b) => b.to_string(),
        Cell::Str(s) => s.clone(),
    }
}

fn format_f32(f: f32) -> String {
    if f.is_finite() && f.fract() == 0.0 && f.abs() < 1e7 {
        format!("{f:.1}")
    } else {
        format!("{f}")
    }
}

fn format_float(f: f64) -> String {
    if f.is_finite() && f.fract() == 0.0 && f.abs() < 1e15 {
        format!("{f:.1}")
    } else {
        format!("{f}")
    }
}

fn json_cell(c: &Cell) -> Value {
    match c {
        Cell::Null => Value::Null,
        Cell::Time(us) => Value::String(rfc3339(*us)),
        Cell::Float(f) => serde_json::Number::from_f64(*f)
            .map_or_else(|| Value::String(f.to_string()), Value::Number),
        // the shortest decimal that reads back as the same f32 (5.1, not 5.099999904632568)
        Cell::F32(f) => format_f32(*f)
            .parse::<f64>()
            .ok()
            .and_then(serde_json::Number::from_f64)
            .map_or_else(|| Value::String(f.to_string()), Value::Number),
        Cell::Int(i) => Value::from(*i),
        Cell::Bool(b) => Value::Bool(*b),
        Cell::Str(s) => Value::String(s.clone()),
    }
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

/// RFC 3339 with microseconds, UTC (`2026-12-01T14:05:00.123456Z`).
pub fn rfc3339(us: i64) -> String {
    let ms = us.div_euclid(1000);
    let (y, mo, d, h) = crate::files::civil(ms);
    let secs = us.div_euclid(1_000_000);
    let min = (secs.rem_euclid(3600)) / 60;
    let s = secs.rem_euclid(60);
    let frac = us.rem_euclid(1_000_000);
    format!("{y:04}-{mo:02}-{d:02}T{h:02}:{min:02}:{s:02}.{frac:06}Z")
}

/// Parses a time given as RFC 3339 (`2026-12-01T14:05:00Z`, fractions and
/// offsets allowed, or a date alone) or as milliseconds since the epoch;
/// returns ms since the epoch.
pub fn parse_time(s: &str) -> Option<i64> {
    let s = s.trim();
    if let Ok(ms) = s.parse::<i64>() {
        return Some(ms);
    }
    let (date, rest) = s.split_at(s.find(['T', 't', ' ']).unwrap_or(s.len()));
    let day = crate::files::start_of(date, 0)?;
    if rest.is_empty() {
        return Some(day);
    }
    let rest = &rest[1..];
    let (clock, offset_ms) = match rest.find(['Z', 'z', '+', '-']) {
        Some(i) => {
            let (c, o) = rest.split_at(i);
            let off = match o {
                "Z" | "z" => 0,
                _ => {
                    let sign = if o.starts_with('-') { -1 } else { 1 };
                    let hm = &o[1..];
                    let (h, m) = hm
                        .split_once(':')
                        .unwrap_or((hm.get(..2)?, hm.get(2..).unwrap_or("0")));
                    let (h, m): (i64, i64) = (
                        h.parse().ok()?,
                        if m.is_empty() { 0 } else { m.parse().ok()? },
                    );
                    sign * (h * 3_600_000 + m * 60_000)
                }
            };
            (c, off)
        }
        None => (rest, 0),
    };
    let mut parts = clock.splitn(3, ':');
    let h: i64 = parts.next()?.parse().ok()?;
    let m: i64 = parts.next().unwrap_or("0").parse().ok()?;
    let sec: f64 = parts.next().unwrap_or("0").parse().ok()?;
    if !(0..24).contains(&h) || !(0..60).contains(&m) || !(0.0..61.0).contains(&sec) {
        return None;
    }
    Some(day + h * 3_600_000 + m * 60_000 + (sec * 1000.0).round() as i64 - offset_ms)
}

/// A CSV text with a header row as one batch: each column numeric (Float64,
/// or Int64 when every value is an integer) when every non-empty cell
/// parses as a number, `true`/`false` as Boolean, otherwise text. Empty
/// cells are nulls.
pub fn csv_to_batch(body: &[u8]) -> Result<RecordBatch, String> {
    let text = std::str::from_utf8(body).map_err(|e| format!("the CSV is not UTF-8: {e}"))?;
    let mut records =
        slipway_protocol::mlflow::parse_csv_records(text).map_err(|e| e.to_string())?;
    if records.is_empty() {
        return Err("the CSV is empty; it needs a header row and data rows".into());
    }
    let header = records.remove(0);
    if records.is_empty() {
        return Err("the CSV has a header row but no data rows".into());
    }
    for (i, r) in records.iter().enumerate() {
        if r.len() != header.len() {
            return Err(format!(
                "CSV line {} has {} fields but the header has {}",
                i + 2,
                r.len(),
                header.len()
            ));
        }
    }
    let mut fields = Vec::new();
    let mut arrays: Vec<ArrayRef> = Vec::new();
    for (c, name) in header.iter().enumerate() {
        if name.trim().is_empty() {
            return Err(format!(
                "CSV column {} has no name in the header row",
                c + 1
            ));
        }
        let cells: Vec<&str> = records.iter().map(|r| r[c].trim()).collect();
        let non_empty = || cells.iter().filter(|s| !s.is_empty());
        let (t, a): (DataType, ArrayRef) = if non_empty().all(|s| s.parse::<i64>().is_ok()) {
            let mut b = Int64Builder::with_capacity(cells.len());
            cells
                .iter()
                .for_each(|s| b.append_option(s.parse::<i64>().ok()));
            (DataType::Int64, Arc::new(b.finish()))
        } else if non_empty().all(|s| s.parse::<f64>().is_ok()) {
            let mut b = Float64Builder::with_capacity(cells.len());
            cells
                .iter()
                .for_each(|s| b.append_option(s.parse::<f64>().ok()));
            (DataType::Float64, Arc::new(b.finish()))
        } else if non_empty().all(|s| matches!(*s, "true" | "false" | "True" | "False")) {
            let mut b = BooleanBuilder::with_capacity(cells.len());
            cells.iter().for_each(|s| {
                b.append_option((!s.is_empty()).then(|| s.eq_ignore_ascii_case("true")));
            });
            (DataType::Boolean, Arc::new(b.finish()))
        } else {
            let mut b = StringBuilder::with_capacity(cells.len(), cells.len() * 8);
            cells.iter().for_each(|s| {
                if s.is_empty() {
                    b.append_null();
                } else {
                    b.append_value(s);
                }
            });
            (DataType::Utf8, Arc::new(b.finish()))
        };
        fields.push(Field::new(name.trim(), t, true));
        arrays.push(a);
    }
    RecordBatch::try_new(Arc::new(Schema::new(fields)), arrays).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn times_round_trip() {
        let us = 1_796_133_900_123_456;
        assert_eq!(rfc3339(us), "2026-12-01T14:05:00.123456Z");
        assert_eq!(
            parse_time("2026-12-01T14:05:00.123Z"),
            Some(1_796_133_900_123)
        );
        assert_eq!(
            parse_time("2026-12-01T15:05:00+01:00"),
            Some(1_796_133_900_000)
        );
        assert_eq!(parse_time("2026-12-01"), Some(1_796_083_200_000));
        assert_eq!(parse_time("1796133900000"), Some(1_796_133_900_000));
        assert_eq!(parse_time("yesterday"), None);
        assert_eq!(parse_time("2026-12-01T25:00:00Z"), None);
    }

    #[test]
    fn csv_columns_get_types() {
        let b = csv_to_batch(b"a,b,c,d\n1,1.5,x,true\n2,,y,false\n").unwrap();
        let types: Vec<DataType> = b
            .schema()
            .fields()
            .iter()
            .map(|f| f.data_type().clone())
            .collect();
        assert_eq!(
            types,
            [
                DataType::Int64,
                DataType::Float64,
                DataType::Utf8,
                DataType::Boolean
            ]
        );
        assert!(b.column(1).is_null(1));
        assert!(csv_to_batch(b"a,b\n1\n").unwrap_err().contains("line 2"));
        assert!(csv_to_batch(b"a,b\n").unwrap_err().contains("no data rows"));
    }

    #[test]
    fn frames_union_columns_and_write_csv() {
        let a = csv_to_batch(b"x,y\n1,2\n").unwrap();
        let b = csv_to_batch(b"x,z\n3,\"a,b\"\n").unwrap();
        let mut f = Frame::default();
        f.extend(&a, |_, _| true, 10);
        f.extend(&b, |_, _| true, 10);
        assert_eq!(f.to_csv(), "x,y,z\r\n1,2,\r\n3,,\"a,b\"\r\n");
        let json = f.to_json();
        assert_eq!(json[1]["z"], "a,b");
        assert!(json[1]["y"].is_null());
        let bytes = f.to_parquet().unwrap();
        let back = crate::files::read_parquet(bytes::Bytes::from(bytes), None).unwrap();
        assert_eq!(back[0].num_rows(), 2);
        assert!(f.extend(&a, |_, _| true, 2));
    }
}
