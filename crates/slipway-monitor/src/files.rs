//! Where monitoring data lives on the artifact store, and reading and
//! writing its Parquet files.
//!
//! ```text
//! predictions/deployment=<d>/version=<v>/date=<YYYY-MM-DD>/hour=<HH>/<first ms>-<last ms>-<id>.parquet
//! feedback/deployment=<d>/date=<YYYY-MM-DD>/hour=<HH>/<first ms>-<last ms>-<id>.parquet
//! references/deployment=<d>/reference.parquet                (uploaded)
//! references/deployment=<d>/version=<v>/logged.parquet       (first logged rows)
//! ```
//!
//! The hive-style directories let pyarrow, pandas and DuckDB read a whole
//! tree at once; the times in a file's name let readers skip files outside
//! a time range without opening them. Every file is written in one atomic
//! put: a reader never sees half a file.

use crate::background::Background;
use arrow_array::RecordBatch;
use bytes::Bytes;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::arrow::{ArrowWriter, ProjectionMask};
use parquet::basic::Compression;
use parquet::file::properties::WriterProperties;
use parquet::schema::types::ColumnPath;
use slipway_artifacts::{ArtifactPath, ArtifactStore};
use slipway_core::Error;

/// Top-level directory of the prediction log.
pub const PREDICTIONS: &str = "predictions";
/// Top-level directory of ground truth.
pub const FEEDBACK: &str = "feedback";
/// Top-level directory of reference data.
pub const REFERENCES: &str = "references";
/// Every top-level directory monitoring owns (the artifact proxy refuses
/// writes there).
pub const OWNED_DIRS: [&str; 3] = [PREDICTIONS, FEEDBACK, REFERENCES];

/// One data file found by a listing.
#[derive(Debug, Clone, PartialEq)]
pub struct DataFile {
    /// Where it is.
    pub path: String,
    /// Its version partition (prediction files).
    pub version: Option<String>,
    /// Earliest and latest row time, ms since the epoch, from its name
    /// (`None`: a file not named by Slipway; read it whole).
    pub range: Option<(i64, i64)>,
}

/// A file that could not be read, and why.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Skipped {
    /// The file.
    pub path: String,
    /// What was wrong with it.
    pub error: String,
}

/// `date=YYYY-MM-DD` and `hour=HH` of a time (ms since the epoch, UTC).
pub fn partition(ms: i64) -> (String, String) {
    let (y, m, d, h) = civil(ms);
    (format!("{y:04}-{m:02}-{d:02}"), format!("{h:02}"))
}

/// Year, month, day, hour of a time in ms since the epoch (UTC).
pub fn civil(ms: i64) -> (i64, u32, u32, u32) {
    let secs = ms.div_euclid(1000);
    let days = secs.div_euclid(86_400);
    let hour = (secs.rem_euclid(86_400) / 3600) as u32;
    // Howard Hinnant's days-to-civil
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d, hour)
}

/// Ms since the epoch of the start of a `YYYY-MM-DD` day and hour.
pub fn start_of(date: &str, hour: u32) -> Option<i64> {
    let mut parts = date.splitn(3, '-');
    let y: i64 = parts.next()?.parse().ok()?;
    let m: i64 = parts.next()?.parse().ok()?;
    let d: i64 = parts.next()?.parse().ok()?;
    if !(1..=12).contains(&m) || !(1..=31).contains(&d) || hour > 23 {
        return None;
    }
    // days-from-civil
    let y2 = if m <= 2 { y - 1 } else { y };
    let era = y2.div_euclid(400);
    let yoe = y2.rem_euclid(400);
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(days * 86_400_000 + i64::from(hour) * 3_600_000)
}

/// The name of a new data file holding rows from `min_ms` to `max_ms`.
pub fn file_name(min_ms: i64, max_ms: i64) -> String {
    format!(
        "{min_ms}-{max_ms}-{}.parquet",
        uuid::Uuid::new_v4().simple()
    )
}

/// The times in a data file's name.
pub fn range_of(name: &str) -> Option<(i64, i64)> {
    let stem = name.strip_suffix(".parquet")?;
    let mut it = stem.splitn(3, '-');
    let a = it.next()?.parse().ok()?;
    let b = it.next()?.parse().ok()?;
    it.next()?;
    Some((a, b))
}

fn path(p: &str) -> Result<ArtifactPath, Error> {
    ArtifactPath::parse(p).map_err(|e| Error::internal(format!("monitoring path {p}: {e}")))
}

fn store_error(e: slipway_artifacts::ArtifactError) -> Error {
    Error::new(e.code(), e.to_string())
}

/// One record batch as Parquet bytes (Snappy).
pub fn to_parquet(batch: &RecordBatch) -> Result<Vec<u8>, String> {
    to_parquet_batches(std::slice::from_ref(batch))
}

/// Record batches of one schema as one Parquet file.
pub fn to_parquet_batches(batches: &[RecordBatch]) -> Result<Vec<u8>, String> {
    let mut each = batches.iter().cloned().map(Ok);
    to_parquet_stream(|| each.next(), || {})
}

/// Batches of one schema, made one at a time by `next` (`None` at the
/// end), as one Parquet file (Snappy); `between` runs after each is
/// written.
pub fn to_parquet_stream(
    mut next: impl FnMut() -> Option<Result<RecordBatch, String>>,
    mut between: impl FnMut(),
) -> Result<Vec<u8>, String> {
    let Some(first) = next().transpose()? else {
        return Err("no rows to write".into());
    };
    // request ids are (nearly) unique per row: a dictionary for them only
    // costs a hash per row until the writer gives it up
    let props = WriterProperties::builder()
        .set_compression(Compression::SNAPPY)
        .set_column_dictionary_enabled(ColumnPath::from("request_id"), false)
        .build();
    let mut buf = Vec::new();
    let mut w =
        ArrowWriter::try_new(&mut buf, first.schema(), Some(props)).map_err(|e| e.to_string())?;
    let mut batch = Some(first);
    while let Some(b) = batch {
        w.write(&b).map_err(|e| e.to_string())?;
        between();
        batch = next().transpose()?;
    }
    w.close().map_err(|e| e.to_string())?;
    Ok(buf)
}

/// Batches of one schema as one batch.
pub fn concat(
    schema: &arrow_schema::SchemaRef,
    parts: &[RecordBatch],
) -> Result<RecordBatch, String> {
    arrow_select::concat::concat_batches(schema, parts).map_err(|e| e.to_string())
}

/// Writes `bytes` at `path` in one atomic put.
pub async fn put(store: &ArtifactStore, p: &str, bytes: Vec<u8>) -> Result<(), Error> {
    store
        .put_bytes(&path(p)?, Bytes::from(bytes))
        .await
        .map(|_| ())
        .map_err(store_error)
}

/// Reads the file at `p`; `None` when there is none.
pub async fn get(store: &ArtifactStore, p: &str) -> Result<Option<Bytes>, Error> {
    match store.get_bytes(&path(p)?).await {
        Ok(b) => Ok(Some(b)),
        Err(e) if e.code() == slipway_core::ErrorCode::ResourceDoesNotExist => Ok(None),
        Err(e) => Err(store_error(e)),
    }
}

/// Deletes `p` and everything under it.
pub async fn delete(store: &ArtifactStore, p: &str) -> Result<u64, Error> {
    store.delete(&path(p)?).await.map_err(store_error)
}

/// The names in directory `dir` (directories when `dirs`, else files).
pub async fn list(store: &ArtifactStore, dir: &str, dirs: bool) -> Result<Vec<String>, Error> {
    let entries = store
        .list_dir(Some(&path(dir)?))
        .await
        .map_err(store_error)?;
    Ok(entries
        .into_iter()
        .filter(|e| e.is_dir == dirs)
        .map(|e| e.path)
        .collect())
}

/// The values of `key=` partition directories under `dir`.
pub async fn partitions(store: &ArtifactStore, dir: &str, key: &str) -> Result<Vec<String>, Error> {
    let prefix = format!("{key}=");
    Ok(list(store, dir, true)
        .await?
        .into_iter()
        .filter_map(|d| d.strip_prefix(&prefix).map(str::to_string))
        .collect())
}

/// The data files under `root` (a deployment's `predictions/…/version=v`
/// or `feedback/…` directory) whose rows may fall in `[start_ms, end_ms)`,
/// oldest first.
pub async fn files_in(
    store: &ArtifactStore,
    root: &str,
    version: Option<&str>,
    start_ms: i64,
    end_ms: i64,
) -> Result<Vec<DataFile>, Error> {
    let mut out = Vec::new();
    let mut dates = partitions(store, root, "date").await?;
    dates.sort();
    for date in dates {
        let Some(day) = start_of(&date, 0) else {
            continue;
        };
        if day >= end_ms || day + 86_400_000 <= start_ms {
            continue;
        }
        let mut hours = partitions(store, &format!("{root}/date={date}"), "hour").await?;
        hours.sort();
        for hour in hours {
            let Some(h) = hour.parse::<u32>().ok().and_then(|h| start_of(&date, h)) else {
                continue;
            };
            if h >= end_ms || h + 3_600_000 <= start_ms {
                continue;
            }
            let dir = format!("{root}/date={date}/hour={hour}");
            let mut names = list(store, &dir, false).await?;
            names.retain(|n| n.ends_with(".parquet"));
            let mut found: Vec<DataFile> = names
                .into_iter()
                .map(|n| DataFile {
                    range: range_of(&n),
                    path: format!("{dir}/{n}"),
                    version: version.map(str::to_string),
                })
                .filter(|f| f.range.is_none_or(|(a, b)| a < end_ms && b >= start_ms))
                .collect();
            found.sort_by_key(|f| f.range.map_or(0, |r| r.0));
            out.extend(found);
        }
    }
    Ok(out)
}

/// The prediction files of `deployment` (one version, or all) in a range.
pub async fn prediction_files(
    store: &ArtifactStore,
    deployment: &str,
    version: Option<&str>,
    start_ms: i64,
    end_ms: i64,
) -> Result<Vec<DataFile>, Error> {
    let root = format!("{PREDICTIONS}/deployment={deployment}");
    let versions = match version {
        Some(v) => vec![v.to_string()],
        None => partitions(store, &root, "version").await?,
    };
    let mut out = Vec::new();
    for v in versions {
        let dir = format!("{root}/version={v}");
        out.extend(files_in(store, &dir, Some(&v), start_ms, end_ms).await?);
    }
    Ok(out)
}

/// Reads a Parquet file's batches, only `columns` (by name; columns the
/// file lacks are left out) when given. A corrupt file is an `Err` naming
/// the problem.
pub fn read_parquet(bytes: Bytes, columns: Option<&[&str]>) -> Result<Vec<RecordBatch>, String> {
    let builder = ParquetRecordBatchReaderBuilder::try_new(bytes).map_err(|e| e.to_string())?;
    let builder = match columns {
        Some(cols) => {
            let schema = builder.schema().clone();
            let idx: Vec<usize> = schema
                .fields()
                .iter()
                .enumerate()
                .filter(|(_, f)| cols.contains(&f.name().as_str()))
                .map(|(i, _)| i)
                .collect();
            let mask = ProjectionMask::roots(builder.parquet_schema(), idx);
            builder.with_projection(mask)
        }
        None => builder,
    };
    let reader = builder
        .with_batch_size(16 * 1024)
        .build()
        .map_err(|e| e.to_string())?;
    reader
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| e.to_string())
}

/// Reads one data file off the executor; a file that cannot be read or
/// decoded becomes a [`Skipped`].
pub async fn read_file(
    store: &ArtifactStore,
    file: &DataFile,
    columns: Option<Vec<String>>,
) -> Result<Vec<RecordBatch>, Skipped> {
    let skipped = |error: String| Skipped {
        path: file.path.clone(),
        error,
    };
    let bytes = match get(store, &file.path).await {
        Ok(Some(b)) => b,
        Ok(None) => return Ok(Vec::new()), // deleted by retention meanwhile
        Err(e) => return Err(skipped(e.message)),
    };
    // decoded on the monitoring thread, off the executor and below requests
    Background::run(Background::queries(), move || {
        let cols: Option<Vec<&str>> = columns
            .as_ref()
            .map(|c| c.iter().map(String::as_str).collect());
        read_parquet(bytes, cols.as_deref())
    })
    .await
    .map_err(skipped)?
    .map_err(|e| skipped(format!("not a readable Parquet file: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partitions_follow_utc_calendar() {
        // 2026-12-01T14:05:00Z
        let ms = 1_796_133_900_000;
        assert_eq!(partition(ms), ("2026-12-01".into(), "14".into()));
        assert_eq!(start_of("2026-12-01", 14), Some(1_796_133_600_000));
        assert_eq!(partition(0), ("1970-01-01".into(), "00".into()));
        assert_eq!(
            start_of("2024-02-29", 0).map(partition),
            Some(("2024-02-29".into(), "00".into()))
        );
        for ms in [951_782_400_000_i64, 1_709_164_800_000, 4_102_444_800_000] {
            let (d, h) = partition(ms);
            assert_eq!(
                start_of(&d, h.parse().unwrap_or(99)),
                Some(ms - ms % 3_600_000)
            );
        }
        assert_eq!(start_of("2026-13-01", 0), None);
    }

    #[test]
    fn file_names_carry_their_time_range() {
        let n = file_name(10, 20);
        assert_eq!(range_of(&n), Some((10, 20)));
        assert_eq!(range_of("part-0.parquet"), None);
    }
}
