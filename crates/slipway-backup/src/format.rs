//! The backup format: layout of a backup location, the manifest, the
//! encoding of metadata rows and of the artifact list. See
//! docs/adr/0004-backup-format.md for why it looks like this.
//!
//! ```text
//! <location>/
//!   blobs/sha256/<2 hex>/<64 hex>           artifact contents, by SHA-256, shared by all backups
//!   backups/<id>/metadata/<table>.ndjson.gz one part per table
//!   backups/<id>/artifacts.ndjson.gz        path -> sha256, size of every artifact file
//!   backups/<id>/manifest.json              written LAST: a backup without it is incomplete
//!   backups/<id>/verification.json          written by `backup verify`
//! ```
//!
//! A part is gzip-compressed NDJSON: a header object, then one JSON value
//! per line (a table's rows are arrays of cells in the header's column
//! order; the artifact list holds objects). The manifest names every part
//! with its size and SHA-256, the row count of every table and the format
//! version. Readers dispatch on `format_version`: [`read_manifest`] reads
//! every version this build knows (today 1) into [`Manifest`], the current
//! shape; a manifest from a newer format is refused with a message saying so.

use std::collections::BTreeMap;
use std::io::{BufRead, Write};

use base64::Engine as _;
use serde::{Deserialize, Serialize};
use serde_json::Value as Json;
use sha2::{Digest, Sha256};
use slipway_metadata::sql::snapshot::{ColumnKind, Value};

use crate::error::{BackupError, Result};

/// The `format` field of every manifest.
pub const FORMAT_NAME: &str = "slipway-backup";
/// The format version this build writes.
pub const FORMAT_VERSION: u32 = 1;
/// Format versions this build reads.
pub const READABLE_VERSIONS: &[u32] = &[1];

/// Directory of the content-addressed blobs.
pub const BLOBS_DIR: &str = "blobs/sha256";
/// Directory of the backups.
pub const BACKUPS_DIR: &str = "backups";
/// The manifest's file name inside a backup directory.
pub const MANIFEST_FILE: &str = "manifest.json";
/// The verification record's file name inside a backup directory.
pub const VERIFICATION_FILE: &str = "verification.json";
/// The artifact list's file name inside a backup directory.
pub const ARTIFACTS_FILE: &str = "artifacts.ndjson.gz";

/// Key of the blob holding content with SHA-256 `sha256` (lowercase hex).
pub fn blob_key(sha256: &str) -> String {
    format!("{BLOBS_DIR}/{}/{sha256}", &sha256[..2.min(sha256.len())])
}

/// Directory of backup `id`.
pub fn backup_dir(id: &str) -> String {
    format!("{BACKUPS_DIR}/{id}")
}

/// Whether `s` is 64 lowercase hex digits.
pub fn is_sha256_hex(s: &str) -> bool {
    s.len() == 64
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// Whether `id` has the shape of a backup id (`YYYYMMDDTHHMMSSZ-xxxxxx`):
/// letters, digits and `-`, so it is a safe path segment.
pub fn is_backup_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= 64 && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
}

/// A file of the backup named by the manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartFile {
    /// Path relative to the backup directory (`metadata/runs.ndjson.gz`).
    pub path: String,
    /// Size in bytes.
    pub bytes: u64,
    /// SHA-256 of the file, lowercase hex.
    pub sha256: String,
}

/// One column of an exported table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ColumnDef {
    /// Column name.
    pub name: String,
    /// `integer`, `real`, `text`, `boolean` or `blob`.
    pub kind: String,
}

/// One exported table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TablePart {
    /// Table name.
    pub name: String,
    /// Columns, in the order of the cells of each row.
    pub columns: Vec<ColumnDef>,
    /// Rows in the part.
    pub rows: u64,
    /// The part.
    pub file: PartFile,
}

/// Where the backup came from (for people; restores do not depend on it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourceInfo {
    /// `sqlite` or `postgres`.
    pub engine: String,
    /// The metadata URL, password redacted.
    pub metadata_url: String,
    /// The artifact store's location.
    pub artifact_root: String,
}

/// How the metadata snapshot was taken.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotInfo {
    /// `sqlite-vacuum-into` or `postgres-repeatable-read`.
    pub method: String,
    /// Every write committed before this instant is in the backup (ms since epoch).
    pub started_at_ms: i64,
    /// No write committed after this instant is in the metadata (ms since epoch).
    pub taken_at_ms: i64,
}

/// The artifacts of a backup.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ArtifactsInfo {
    /// The artifact list.
    pub file: PartFile,
    /// Files in the list.
    pub files: u64,
    /// Their total size.
    pub bytes: u64,
    /// Distinct blobs they use.
    pub blobs: u64,
    /// Blobs this backup copied (the others were already at the location).
    pub copied_blobs: u64,
    /// Bytes this backup copied.
    pub copied_bytes: u64,
    /// Files present in the store without a recorded digest (copied, hashed on the way).
    pub unrecorded_files: u64,
    /// Files whose digest is recorded but that were absent from the store
    /// at backup time (not in the backup); their number.
    pub missing_files: u64,
    /// The first of them (at most 100).
    pub missing: Vec<String>,
    /// Files overwritten between the snapshot and their copy: the backup
    /// holds their newer content and digest.
    pub changed_during_backup: Vec<String>,
}

/// The manifest of one complete backup, in the current format's shape.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// Always [`FORMAT_NAME`].
    pub format: String,
    /// The format version the backup was written in.
    pub format_version: u32,
    /// The backup id (also its directory name).
    pub backup_id: String,
    /// When the backup started, RFC 3339 UTC.
    pub created_at: String,
    /// The same, ms since epoch.
    pub created_at_ms: i64,
    /// When the manifest was written, ms since epoch.
    pub completed_at_ms: i64,
    /// Version of the Slipway that wrote it.
    pub slipway_version: String,
    /// Where it came from.
    pub source: SourceInfo,
    /// The metadata schema version of the source (newest applied migration).
    pub schema_version: i64,
    /// The consistent point.
    pub snapshot: SnapshotInfo,
    /// Every exported table, in dependency order (restore in this order).
    pub tables: Vec<TablePart>,
    /// The artifacts.
    pub artifacts: ArtifactsInfo,
}

impl Manifest {
    /// Rows per table.
    pub fn counts(&self) -> BTreeMap<String, u64> {
        self.tables
            .iter()
            .map(|t| (t.name.clone(), t.rows))
            .collect()
    }

    /// Every part the manifest names, the artifact list last.
    pub fn parts(&self) -> Vec<&PartFile> {
        let mut v: Vec<&PartFile> = self.tables.iter().map(|t| &t.file).collect();
        v.push(&self.artifacts.file);
        v
    }

    /// Bytes of the backup's own files (parts) plus the artifacts it references.
    pub fn total_bytes(&self) -> u64 {
        self.parts().iter().map(|p| p.bytes).sum::<u64>() + self.artifacts.bytes
    }

    /// Serializes the manifest (pretty JSON, for people who open it).
    pub fn to_json(&self) -> Vec<u8> {
        let mut v = serde_json::to_vec_pretty(self).unwrap_or_default();
        v.push(b'\n');
        v
    }
}

/// Reads a manifest of any format version this build knows, into the
/// current shape. `file` names it in errors.
pub fn read_manifest(bytes: &[u8], file: &str) -> Result<Manifest> {
    let value: Json = serde_json::from_slice(bytes)
        .map_err(|e| BackupError::format(file, format!("not valid JSON ({e}); truncated?")))?;
    if value.get("format").and_then(Json::as_str) != Some(FORMAT_NAME) {
        return Err(BackupError::format(
            file,
            format!("not a Slipway backup manifest (its \"format\" is not \"{FORMAT_NAME}\")"),
        ));
    }
    let version = value
        .get("format_version")
        .and_then(Json::as_u64)
        .ok_or_else(|| BackupError::format(file, "no numeric \"format_version\""))?;
    match version {
        1 => v1::read(value, file),
        v if v > u64::from(FORMAT_VERSION) => Err(BackupError::Unsupported(format!(
            "{file} is in backup format version {v}, written by a newer Slipway; this build reads versions {READABLE_VERSIONS:?}: use a newer slipway binary"
        ))),
        v => Err(BackupError::format(file, format!("unknown format version {v}"))),
    }
}

/// Readers of format version 1 (the current one). When version 2 comes,
/// version 1's types move here and [`v1::read`] converts them to the new
/// [`Manifest`]; the fixture in `tests/fixtures/v1` keeps it honest.
mod v1 {
    use super::*;

    pub(super) fn read(value: Json, file: &str) -> Result<Manifest> {
        let m: Manifest = serde_json::from_value(value)
            .map_err(|e| BackupError::format(file, format!("manifest version 1: {e}")))?;
        check(&m, file)?;
        Ok(m)
    }

    fn check(m: &Manifest, file: &str) -> Result<()> {
        if !is_backup_id(&m.backup_id) {
            return Err(BackupError::format(
                file,
                format!("invalid backup id '{}'", m.backup_id),
            ));
        }
        for part in m.parts() {
            let safe = !part.path.is_empty()
                && !part.path.starts_with('/')
                && part
                    .path
                    .split('/')
                    .all(|s| !s.is_empty() && s != "." && s != "..");
            if !safe || !is_sha256_hex(&part.sha256) {
                return Err(BackupError::format(
                    file,
                    format!(
                        "part '{}' has an unsafe path or an invalid digest",
                        part.path
                    ),
                ));
            }
        }
        for t in &m.tables {
            for c in &t.columns {
                if ColumnKind::parse(&c.kind).is_none() {
                    return Err(BackupError::format(
                        file,
                        format!(
                            "table {} column {} has unknown kind '{}'",
                            t.name, c.name, c.kind
                        ),
                    ));
                }
            }
        }
        Ok(())
    }
}

/// The record `backup verify` leaves next to a manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VerificationRecord {
    /// Format version of this record (1).
    pub format_version: u32,
    /// The backup verified.
    pub backup_id: String,
    /// When, ms since epoch.
    pub verified_at_ms: i64,
    /// Whether no problem was found.
    pub ok: bool,
    /// Every problem found.
    pub problems: Vec<String>,
    /// Version of the Slipway that verified it.
    pub slipway_version: String,
}

/// One entry of the artifact list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ArtifactEntry {
    /// Path relative to the artifact root.
    pub path: String,
    /// SHA-256 of its content (the blob's name).
    pub sha256: String,
    /// Size in bytes.
    pub size: u64,
    /// Whether the digest was recorded at upload (else computed by the backup).
    pub recorded: bool,
    /// The digest is recorded but the file was absent from the store at
    /// backup time: the backup has no content for it.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub missing: bool,
}

/// Header line of a table part.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TableHeader {
    /// Always `table`.
    pub part: String,
    /// The table.
    pub table: String,
    /// Column names, in cell order.
    pub columns: Vec<String>,
}

/// Encodes one cell: integers, booleans and text as themselves, reals as
/// numbers (`"inf"`, `"-inf"`, `"nan"` for non-finite ones), blobs as
/// base64 strings, NULL as `null`.
pub fn encode_cell(v: &Value) -> Json {
    match v {
        Value::Null => Json::Null,
        Value::Integer(i) => Json::from(*i),
        Value::Real(f) => match serde_json::Number::from_f64(*f) {
            Some(n) => Json::Number(n),
            None if f.is_nan() => Json::from("nan"),
            None if *f > 0.0 => Json::from("inf"),
            None => Json::from("-inf"),
        },
        Value::Text(s) => Json::from(s.as_str()),
        Value::Boolean(b) => Json::from(*b),
        Value::Blob(b) => Json::from(base64::engine::general_purpose::STANDARD.encode(b)),
    }
}

/// Decodes one cell of a column of `kind`.
pub fn decode_cell(j: &Json, kind: ColumnKind) -> std::result::Result<Value, String> {
    Ok(match (kind, j) {
        (_, Json::Null) => Value::Null,
        (ColumnKind::Integer, Json::Number(n)) => Value::Integer(
            n.as_i64()
                .ok_or_else(|| format!("{n} is not a 64-bit integer"))?,
        ),
        (ColumnKind::Real, Json::Number(n)) => {
            Value::Real(n.as_f64().ok_or_else(|| format!("{n} is not a number"))?)
        }
        (ColumnKind::Real, Json::String(s)) => Value::Real(match s.as_str() {
            "inf" => f64::INFINITY,
            "-inf" => f64::NEG_INFINITY,
            "nan" => f64::NAN,
            other => return Err(format!("'{other}' is not a real")),
        }),
        (ColumnKind::Text, Json::String(s)) => Value::Text(s.clone()),
        (ColumnKind::Boolean, Json::Bool(b)) => Value::Boolean(*b),
        (ColumnKind::Blob, Json::String(s)) => Value::Blob(
            base64::engine::general_purpose::STANDARD
                .decode(s)
                .map_err(|e| format!("invalid base64: {e}"))?,
        ),
        (kind, other) => return Err(format!("{other} is not a {} value", kind.name())),
    })
}

/// A writer that hashes and counts what passes through it.
pub struct HashingWriter<W> {
    inner: W,
    hasher: Sha256,
    bytes: u64,
}

impl<W: Write> HashingWriter<W> {
    /// Wraps `inner`.
    pub fn new(inner: W) -> Self {
        Self {
            inner,
            hasher: Sha256::new(),
            bytes: 0,
        }
    }

    /// The inner writer, the SHA-256 (hex) and byte count of what was written.
    pub fn finish(self) -> (W, String, u64) {
        (self.inner, hex::encode(self.hasher.finalize()), self.bytes)
    }
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.bytes += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// Writes a gzip NDJSON part: header first, then one JSON value per line;
/// [`PartWriter::finish`] returns the SHA-256 and size of the file.
pub struct PartWriter<W: Write> {
    gz: flate2::write::GzEncoder<HashingWriter<W>>,
    lines: u64,
}

impl<W: Write> PartWriter<W> {
    /// Starts a part on `out` with `header` as its first line.
    pub fn new(out: W, header: &impl Serialize) -> std::io::Result<Self> {
        let gz =
            flate2::write::GzEncoder::new(HashingWriter::new(out), flate2::Compression::fast());
        let mut w = Self { gz, lines: 0 };
        w.line_raw(header)?;
        Ok(w)
    }

    fn line_raw(&mut self, v: &impl Serialize) -> std::io::Result<()> {
        serde_json::to_writer(&mut self.gz, v).map_err(std::io::Error::other)?;
        self.gz.write_all(b"\n")
    }

    /// Appends one line.
    pub fn line(&mut self, v: &impl Serialize) -> std::io::Result<()> {
        self.lines += 1;
        self.line_raw(v)
    }

    /// Appends a row of cells.
    pub fn row(&mut self, cells: &[Value]) -> std::io::Result<()> {
        let json: Vec<Json> = cells.iter().map(encode_cell).collect();
        self.line(&json)
    }

    /// Lines written after the header.
    pub fn lines(&self) -> u64 {
        self.lines
    }

    /// Finishes the gzip stream; returns the writer, SHA-256 and size.
    pub fn finish(self) -> std::io::Result<(W, String, u64)> {
        let inner = self.gz.finish()?;
        let (mut w, sha, bytes) = inner.finish();
        w.flush()?;
        Ok((w, sha, bytes))
    }
}

/// Reads a gzip NDJSON part line by line.
pub struct PartReader<R: std::io::Read> {
    lines: std::io::Lines<std::io::BufReader<flate2::read::GzDecoder<R>>>,
    file: String,
    line_no: u64,
}

impl<R: std::io::Read> PartReader<R> {
    /// Opens a part; `file` names it in errors.
    pub fn new(input: R, file: &str) -> Self {
        Self {
            lines: std::io::BufReader::new(flate2::read::GzDecoder::new(input)).lines(),
            file: file.to_string(),
            line_no: 0,
        }
    }

    /// The next line as JSON, or `None` at the end.
    pub fn next_json(&mut self) -> Result<Option<Json>> {
        let Some(line) = self.lines.next() else {
            return Ok(None);
        };
        self.line_no += 1;
        let line = line.map_err(|e| {
            BackupError::format(
                &self.file,
                format!(
                    "unreadable at line {}: {e} (truncated or corrupt)",
                    self.line_no
                ),
            )
        })?;
        serde_json::from_str(&line)
            .map(Some)
            .map_err(|e| BackupError::format(&self.file, format!("line {}: {e}", self.line_no)))
    }

    /// The next line decoded as `T`.
    pub fn next_value<T: serde::de::DeserializeOwned>(&mut self) -> Result<Option<T>> {
        match self.next_json()? {
            None => Ok(None),
            Some(j) => serde_json::from_value(j).map(Some).map_err(|e| {
                BackupError::format(&self.file, format!("line {}: {e}", self.line_no))
            }),
        }
    }

    /// The next row of a table part, decoded by `kinds`.
    pub fn next_row(&mut self, kinds: &[ColumnKind]) -> Result<Option<Vec<Value>>> {
        let Some(j) = self.next_json()? else {
            return Ok(None);
        };
        let Json::Array(cells) = j else {
            return Err(BackupError::format(
                &self.file,
                format!("line {} is not a row", self.line_no),
            ));
        };
        if cells.len() != kinds.len() {
            return Err(BackupError::format(
                &self.file,
                format!(
                    "line {} has {} cells for {} columns",
                    self.line_no,
                    cells.len(),
                    kinds.len()
                ),
            ));
        }
        cells
            .iter()
            .zip(kinds)
            .map(|(c, k)| decode_cell(c, *k))
            .collect::<std::result::Result<Vec<_>, _>>()
            .map(Some)
            .map_err(|e| BackupError::format(&self.file, format!("line {}: {e}", self.line_no)))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn cells_round_trip_every_kind() {
        let cases = [
            (Value::Integer(i64::MIN), ColumnKind::Integer),
            (Value::Integer(i64::MAX), ColumnKind::Integer),
            (Value::Real(0.1), ColumnKind::Real),
            (Value::Real(-1e300), ColumnKind::Real),
            (Value::Real(f64::INFINITY), ColumnKind::Real),
            (Value::Real(f64::NEG_INFINITY), ColumnKind::Real),
            (Value::Text("é\n\"x\"".into()), ColumnKind::Text),
            (Value::Boolean(true), ColumnKind::Boolean),
            (Value::Blob(vec![0, 255, 7]), ColumnKind::Blob),
            (Value::Null, ColumnKind::Text),
        ];
        for (v, k) in cases {
            let j = encode_cell(&v);
            let text = serde_json::to_string(&j).unwrap();
            let back = decode_cell(&serde_json::from_str(&text).unwrap(), k).unwrap();
            assert_eq!(back, v, "{text}");
        }
        let nan = decode_cell(&encode_cell(&Value::Real(f64::NAN)), ColumnKind::Real).unwrap();
        assert!(matches!(nan, Value::Real(f) if f.is_nan()));
        assert!(decode_cell(&Json::from("x"), ColumnKind::Integer).is_err());
        assert!(decode_cell(&Json::from(1.5), ColumnKind::Integer).is_err());
    }

    #[test]
    fn parts_round_trip_and_detect_truncation() {
        let header = TableHeader {
            part: "table".into(),
            table: "t".into(),
            columns: vec!["a".into(), "b".into()],
        };
        let mut w = PartWriter::new(Vec::new(), &header).unwrap();
        for i in 0..1000 {
            w.row(&[Value::Integer(i), Value::Text(format!("row {i}"))])
                .unwrap();
        }
        assert_eq!(w.lines(), 1000);
        let (bytes, sha, size) = w.finish().unwrap();
        assert_eq!(size as usize, bytes.len());
        assert_eq!(sha, hex::encode(Sha256::digest(&bytes)));
        let mut r = PartReader::new(bytes.as_slice(), "t.ndjson.gz");
        let h: TableHeader = r.next_value().unwrap().unwrap();
        assert_eq!(h, header);
        let kinds = [ColumnKind::Integer, ColumnKind::Text];
        let mut n = 0;
        while let Some(row) = r.next_row(&kinds).unwrap() {
            assert_eq!(row[0], Value::Integer(n));
            n += 1;
        }
        assert_eq!(n, 1000);
        // A truncated part fails with an error naming the file, never a panic.
        let cut = &bytes[..bytes.len() / 2];
        let mut r = PartReader::new(cut, "t.ndjson.gz");
        let mut failed = None;
        for _ in 0..2000 {
            match r.next_json() {
                Ok(Some(_)) => {}
                Ok(None) => break,
                Err(e) => {
                    failed = Some(e);
                    break;
                }
            }
        }
        let e = failed.expect("truncation is detected");
        assert!(e.to_string().contains("t.ndjson.gz"), "{e}");
    }

    #[test]
    fn manifests_of_unknown_or_newer_versions_are_refused() {
        let e = read_manifest(b"{", "m.json").unwrap_err();
        assert!(e.to_string().contains("m.json"), "{e}");
        let e = read_manifest(br#"{"format":"other","format_version":1}"#, "m.json").unwrap_err();
        assert!(e.to_string().contains("not a Slipway backup"), "{e}");
        let e = read_manifest(
            br#"{"format":"slipway-backup","format_version":99}"#,
            "m.json",
        )
        .unwrap_err();
        assert!(matches!(e, BackupError::Unsupported(_)), "{e}");
        assert!(e.to_string().contains("newer Slipway"), "{e}");
    }

    /// Damaged input of every kind (bytes flipped, cut, shuffled) is an
    /// error, never a panic: manifests and parts come from storage the
    /// reader does not trust.
    #[test]
    fn damaged_manifests_and_parts_never_panic() {
        let header = TableHeader {
            part: "table".into(),
            table: "t".into(),
            columns: vec!["a".into(), "b".into(), "c".into()],
        };
        let mut w = PartWriter::new(Vec::new(), &header).unwrap();
        for i in 0..200 {
            w.row(&[
                Value::Integer(i),
                Value::Real(i as f64 / 3.0),
                Value::Text("x".repeat(i as usize % 7)),
            ])
            .unwrap();
        }
        let (part, _, _) = w.finish().unwrap();
        let manifest = br#"{"format":"slipway-backup","format_version":1,"backup_id":"20261201T000000Z-abcdef"}"#.to_vec();
        let kinds = [ColumnKind::Integer, ColumnKind::Real, ColumnKind::Text];
        // A small deterministic generator (xorshift): no dependency, reproducible.
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for round in 0..400 {
            for original in [&part, &manifest] {
                let mut b = original.clone();
                match round % 3 {
                    0 => {
                        for _ in 0..1 + next() % 4 {
                            let i = (next() as usize) % b.len();
                            b[i] ^= 1 << (next() % 8);
                        }
                    }
                    1 => b.truncate((next() as usize) % b.len()),
                    _ => {
                        let i = (next() as usize) % b.len();
                        let j = (next() as usize) % b.len();
                        b.swap(i, j);
                    }
                }
                let _ = read_manifest(&b, "manifest.json");
                let mut r = PartReader::new(b.as_slice(), "t.ndjson.gz");
                let _ = r.next_value::<TableHeader>();
                for _ in 0..300 {
                    match r.next_row(&kinds) {
                        Ok(Some(_)) => {}
                        Ok(None) | Err(_) => break,
                    }
                }
            }
        }
    }

    #[test]
    fn keys_and_ids() {
        let sha = "ab".repeat(32);
        assert!(is_sha256_hex(&sha));
        assert_eq!(blob_key(&sha), format!("blobs/sha256/ab/{sha}"));
        assert!(is_backup_id("20261201T120000Z-1a2b3c"));
        assert!(!is_backup_id("../x") && !is_backup_id(""));
    }
}
