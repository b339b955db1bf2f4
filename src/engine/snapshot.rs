//! The engine written to a file and read back in one sequential pass (issue 15: start in
//! seconds): every layer's features in their compact form, in slot order, the R-tree's entries in
//! the tree's own order (so that bulk-loading them again sorts little) and the property
//! statistics, under a header naming the database and change-log position it reflects.
//!
//! Layout (little-endian): `MAGIC`, format version (u32), instance, change-log position (i64),
//! fingerprint of the entry at that position, layers, and last the XXH3-64 of every byte before
//! it. Strings and byte strings are a u32 length and their bytes. A layer is its metadata (JSON),
//! revision (u64), property statistics, features (version i64, text fields, WKB or
//! [`NONE`]) and R-tree entries (slot u32, min x, min y, max x, max y as f64).
//!
//! A file that is truncated, altered or of another format is refused with a [`SnapshotError`]
//! before any of it is served: every length is checked against what is left of the file and the
//! checksum against everything read. Whether it belongs to the database is the caller's check
//! (see `App::open_with_snapshot`).

use std::collections::BTreeMap;
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::Path;
use std::sync::Arc;

use parking_lot::RwLock;
use rstar::primitives::{GeomWithData, Rectangle};
use rstar::RTreeObject;
use xxhash_rust::xxh3::Xxh3;

use super::compact::Compact;
use super::index::{Entry, LayerIndex, PropertyStats};
use super::Engine;
use crate::model::Layer;

const MAGIC: &[u8; 8] = b"YZTSNAP\0";
const FORMAT: u32 = 1;
/// The length of an absent geometry.
const NONE: u32 = u32::MAX;
/// JSON type names of the property statistics, by their code in the file.
const TYPES: [&str; 6] = ["string", "number", "integer", "boolean", "array", "object"];

/// What a snapshot reflects: the database it was written from and the change-log position
/// (with that entry's fingerprint) its engine had applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotHead {
    pub instance: String,
    pub seq: i64,
    pub fingerprint: String,
}

/// Why a snapshot file was not used.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    #[error("cannot read or write the snapshot: {0}")]
    Io(#[from] std::io::Error),
    #[error("not a snapshot of this format: {0}")]
    Format(String),
    #[error("the snapshot is damaged: {0}")]
    Corrupt(String),
}

fn corrupt(what: impl Into<String>) -> SnapshotError {
    SnapshotError::Corrupt(what.into())
}

/// A writer that hashes what goes through it.
struct Hashing<W> {
    inner: W,
    hash: Xxh3,
}

impl<W: Write> Write for Hashing<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hash.update(&buf[..n]);
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

struct Out<W: Write>(BufWriter<Hashing<W>>);

impl<W: Write> Out<W> {
    fn bytes(&mut self, b: &[u8]) -> std::io::Result<()> {
        self.0.write_all(&(b.len() as u32).to_le_bytes())?;
        self.0.write_all(b)
    }
    fn u32(&mut self, v: u32) -> std::io::Result<()> {
        self.0.write_all(&v.to_le_bytes())
    }
    fn u64(&mut self, v: u64) -> std::io::Result<()> {
        self.0.write_all(&v.to_le_bytes())
    }
    fn f64(&mut self, v: f64) -> std::io::Result<()> {
        self.0.write_all(&v.to_le_bytes())
    }
}

/// The name prefix of the temporary files a snapshot of `path` is written to.
fn temp_prefix(path: &Path) -> String {
    let name = path.file_name().map_or_else(
        || "snapshot".to_string(),
        |n| n.to_string_lossy().into_owned(),
    );
    format!(".{name}.writing-")
}

/// A temporary file left this long is a write that was killed (a whole snapshot of millions of
/// features is written in seconds).
const STALE_TEMP: std::time::Duration = std::time::Duration::from_secs(600);

/// Removes the temporary files of writes of this snapshot that were killed before their rename
/// (SIGKILL, power loss), so that they do not pile up beside the database.
fn remove_stale_temps(dir: &Path, prefix: &str) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let stale = e.file_name().to_string_lossy().starts_with(prefix)
            && e.metadata()
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| t.elapsed().ok())
                .is_some_and(|age| age > STALE_TEMP);
        if stale {
            match std::fs::remove_file(e.path()) {
                Ok(()) => {
                    tracing::info!(file = %e.path().display(), "removed a snapshot write that was cut short")
                }
                Err(err) => {
                    tracing::warn!(file = %e.path().display(), error = %err, "could not remove a snapshot write that was cut short")
                }
            }
        }
    }
}

/// Writes `engine` to `path` atomically (a temporary file beside it, synced, then renamed over
/// it): readers of `path` see the old snapshot or the new one, never part of one. Each layer is
/// read-locked while it is written. Returns the file's size.
pub fn write(engine: &Engine, head: &SnapshotHead, path: &Path) -> Result<u64, SnapshotError> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let prefix = temp_prefix(path);
    remove_stale_temps(dir, &prefix);
    let tmp = tempfile::Builder::new().prefix(&prefix).tempfile_in(dir)?;
    let file = tmp.as_file().try_clone()?;
    let mut out = Out(BufWriter::with_capacity(
        1 << 20,
        Hashing {
            inner: file,
            hash: Xxh3::new(),
        },
    ));
    out.0.write_all(MAGIC)?;
    out.u32(FORMAT)?;
    out.bytes(head.instance.as_bytes())?;
    out.u64(head.seq as u64)?;
    out.bytes(head.fingerprint.as_bytes())?;
    let layers = engine.layers();
    out.u32(layers.len() as u32)?;
    for idx in layers {
        write_layer(&mut out, &idx.read())?;
    }
    let hashing = out.0.into_inner().map_err(|e| e.into_error())?;
    let mut file = hashing.inner;
    file.write_all(&hashing.hash.digest().to_le_bytes())?;
    file.sync_all()?;
    let size = file.metadata()?.len();
    tmp.persist(path).map_err(|e| e.error)?;
    Ok(size)
}

fn write_layer<W: Write>(out: &mut Out<W>, idx: &LayerIndex) -> Result<(), SnapshotError> {
    let meta = serde_json::to_vec(&idx.layer).map_err(|e| SnapshotError::Format(e.to_string()))?;
    out.bytes(&meta)?;
    out.u64(idx.revision)?;
    let stats = idx.property_stats();
    out.u32(stats.len() as u32)?;
    for (key, s) in stats {
        out.bytes(key.as_bytes())?;
        out.u64(s.count as u64)?;
        let codes: Vec<u8> = s
            .types
            .iter()
            .filter_map(|t| TYPES.iter().position(|k| k == t).map(|p| p as u8))
            .collect();
        out.bytes(&codes)?;
    }
    // Slots renumbered without the deleted ones, in the same order.
    let mut renumber = vec![u32::MAX; idx.slot_count()];
    out.u32(idx.len() as u32)?;
    for (new, (old, c)) in idx.compact_iter().enumerate() {
        renumber[old as usize] = new as u32;
        let (text, wkb) = c.parts();
        out.u64(c.version as u64)?;
        out.bytes(text)?;
        match wkb {
            Some(b) => out.bytes(b)?,
            None => out.u32(NONE)?,
        }
    }
    out.u32(idx.tree.size() as u32)?;
    for e in idx.tree.iter() {
        let env = e.geom().envelope();
        out.u32(renumber[e.data as usize])?;
        for v in [
            env.lower()[0],
            env.lower()[1],
            env.upper()[0],
            env.upper()[1],
        ] {
            out.f64(v)?;
        }
    }
    Ok(())
}

/// A reader of the hashed part of the file (all but the last 8 bytes), hashing what it reads.
struct HashedPart {
    file: std::fs::File,
    left: u64,
    hash: Xxh3,
}

impl Read for HashedPart {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let want = buf
            .len()
            .min(usize::try_from(self.left).unwrap_or(usize::MAX));
        let n = self.file.read(&mut buf[..want])?;
        self.hash.update(&buf[..n]);
        self.left -= n as u64;
        Ok(n)
    }
}

/// A snapshot file whose header has been read; [`Snapshot::load`] reads the rest.
pub struct Snapshot {
    pub head: SnapshotHead,
    src: Src,
}

struct Src {
    r: BufReader<HashedPart>,
    /// Bytes of the hashed part not read yet.
    left: u64,
}

impl Src {
    fn exact(&mut self, n: usize) -> Result<Vec<u8>, SnapshotError> {
        if n as u64 > self.left {
            return Err(corrupt(format!(
                "a length of {n} bytes runs past the end of the file"
            )));
        }
        let mut v = vec![0; n];
        self.r.read_exact(&mut v)?;
        self.left -= n as u64;
        Ok(v)
    }
    /// `n` more bytes at the end of `v` (which then holds exactly what it needs).
    fn append(&mut self, v: &mut Vec<u8>, n: usize) -> Result<(), SnapshotError> {
        if n as u64 > self.left {
            return Err(corrupt(format!(
                "a length of {n} bytes runs past the end of the file"
            )));
        }
        let at = v.len();
        v.reserve_exact(n);
        v.resize(at + n, 0);
        self.r.read_exact(&mut v[at..])?;
        self.left -= n as u64;
        Ok(())
    }
    fn array<const N: usize>(&mut self) -> Result<[u8; N], SnapshotError> {
        if N as u64 > self.left {
            return Err(corrupt("the file ends early"));
        }
        let mut a = [0; N];
        self.r.read_exact(&mut a)?;
        self.left -= N as u64;
        Ok(a)
    }
    fn u32(&mut self) -> Result<u32, SnapshotError> {
        Ok(u32::from_le_bytes(self.array()?))
    }
    fn u64(&mut self) -> Result<u64, SnapshotError> {
        Ok(u64::from_le_bytes(self.array()?))
    }
    fn f64(&mut self) -> Result<f64, SnapshotError> {
        Ok(f64::from_le_bytes(self.array()?))
    }
    fn bytes(&mut self) -> Result<Vec<u8>, SnapshotError> {
        let n = self.u32()?;
        self.exact(n as usize)
    }
    fn string(&mut self) -> Result<String, SnapshotError> {
        String::from_utf8(self.bytes()?).map_err(|_| corrupt("a text is not UTF-8"))
    }
    /// A count of items at least `min_size` bytes each, checked against what is left.
    fn count(&mut self, min_size: u64) -> Result<usize, SnapshotError> {
        let n = self.u32()?;
        if u64::from(n) * min_size > self.left {
            return Err(corrupt(format!(
                "a count of {n} runs past the end of the file"
            )));
        }
        Ok(n as usize)
    }
}

impl Snapshot {
    /// Opens `path` and reads its header.
    pub fn open(path: &Path) -> Result<Snapshot, SnapshotError> {
        let file = std::fs::File::open(path)?;
        let len = file.metadata()?.len();
        let hashed = len
            .checked_sub(8)
            .ok_or_else(|| SnapshotError::Format("shorter than a header".into()))?;
        let mut src = Src {
            r: BufReader::with_capacity(
                1 << 20,
                HashedPart {
                    file,
                    left: hashed,
                    hash: Xxh3::new(),
                },
            ),
            left: hashed,
        };
        let magic: [u8; 8] = src
            .array()
            .map_err(|_| SnapshotError::Format("shorter than a header".into()))?;
        if &magic != MAGIC {
            return Err(SnapshotError::Format("no snapshot header".into()));
        }
        let format = src.u32()?;
        if format != FORMAT {
            return Err(SnapshotError::Format(format!(
                "format {format}, this build reads {FORMAT}"
            )));
        }
        let instance = src.string()?;
        let seq = src.u64()? as i64;
        let fingerprint = src.string()?;
        Ok(Snapshot {
            head: SnapshotHead {
                instance,
                seq,
                fingerprint,
            },
            src,
        })
    }

    /// Reads the engine; nothing of it is returned unless every byte checks out.
    pub fn load(mut self) -> Result<Engine, SnapshotError> {
        let n = self.src.count(16)?;
        let mut layers = BTreeMap::new();
        for _ in 0..n {
            let idx = read_layer(&mut self.src)?;
            layers.insert(idx.layer.id.clone(), Arc::new(RwLock::new(idx)));
        }
        if self.src.left != 0 {
            return Err(corrupt("bytes left over after the last layer"));
        }
        let part = self.src.r.into_inner();
        let digest = part.hash.digest();
        let mut file = part.file;
        let mut trailer = [0u8; 8];
        file.read_exact(&mut trailer)?;
        if u64::from_le_bytes(trailer) != digest {
            return Err(corrupt("checksum mismatch"));
        }
        let engine = Engine::new();
        *engine.layers.write() = layers;
        Ok(engine)
    }
}

fn read_layer(src: &mut Src) -> Result<LayerIndex, SnapshotError> {
    let layer: Layer =
        serde_json::from_slice(&src.bytes()?).map_err(|e| corrupt(format!("layer: {e}")))?;
    let revision = src.u64()?;
    let mut stats = BTreeMap::new();
    for _ in 0..src.count(16)? {
        let key = src.string()?;
        let count = src.u64()? as usize;
        let types = src
            .bytes()?
            .into_iter()
            .map(|c| TYPES.get(c as usize).copied())
            .collect::<Option<Vec<&'static str>>>()
            .ok_or_else(|| corrupt("an unknown property type"))?;
        stats.insert(key, PropertyStats { types, count });
    }
    let n = src.count(16)?;
    let mut slots = Vec::with_capacity(n);
    for _ in 0..n {
        let version = src.u64()? as i64;
        // The text and the WKB into one buffer, as the engine keeps them.
        let mut data = src.bytes()?;
        let text_len = data.len();
        match src.u32()? {
            NONE => {}
            len => src.append(&mut data, len as usize)?,
        }
        let c = Compact::from_parts(data, text_len, version)
            .ok_or_else(|| corrupt(format!("a feature of layer {} is malformed", layer.id)))?;
        slots.push(c);
    }
    let m = src.count(36)?;
    let mut entries: Vec<Entry> = Vec::with_capacity(m);
    for _ in 0..m {
        let slot = src.u32()?;
        if slot as usize >= n {
            return Err(corrupt("an index entry names no feature"));
        }
        let [x0, y0, x1, y1] = [src.f64()?, src.f64()?, src.f64()?, src.f64()?];
        if !(x0 <= x1 && y0 <= y1) {
            return Err(corrupt("an index entry's box is inverted"));
        }
        entries.push(GeomWithData::new(
            Rectangle::from_corners([x0, y0], [x1, y1]),
            slot,
        ));
    }
    let id = layer.id.clone();
    LayerIndex::from_snapshot(layer, revision, slots, entries, stats)
        .ok_or_else(|| corrupt(format!("two features of layer {id} share an id")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::Query;
    use crate::model::Feature;
    use geo::{polygon, Geometry};

    fn engine() -> Engine {
        let mut features = Vec::new();
        for i in 0..50 {
            let x = 105.0 + f64::from(i) * 0.01;
            let mut props = serde_json::Map::new();
            props.insert("地类编码".into(), format!("01{:02}", i % 7).into());
            props.insert("面积".into(), (f64::from(i) * 1.5).into());
            let mut f = Feature::from_parts(
                "dltb",
                format!("p{i}"),
                props,
                (i % 10 != 3).then(|| {
                    Geometry::Polygon(polygon![
                        (x: x, y: 29.0), (x: x + 0.01, y: 29.0), (x: x, y: 29.01)
                    ])
                }),
            );
            f.name = (i % 2 == 0).then(|| format!("地块{i}"));
            f.version = i64::from(i % 3) + 1;
            features.push(f);
        }
        let e = Engine::load(
            vec![(Layer::untitled("dltb"), 7), (Layer::untitled("empty"), 2)],
            features,
        );
        // A deleted slot is left out of the file; the order of the others is kept.
        e.layer("dltb").unwrap().write().delete("p4");
        e
    }

    fn head() -> SnapshotHead {
        SnapshotHead {
            instance: "abc".into(),
            seq: 42,
            fingerprint: "dltb\u{1f}p1".into(),
        }
    }

    fn dump(e: &Engine) -> Vec<(String, u64, Vec<Feature>, Vec<String>)> {
        let q = Query {
            bbox: Some(geo::Rect::new((105.1, 28.0), (105.3, 30.0))),
            limit: 1000,
            ..Default::default()
        };
        e.layers()
            .iter()
            .map(|l| {
                let l = l.read();
                let mut found: Vec<String> =
                    l.query(&q).features.iter().map(|f| f.id.clone()).collect();
                found.sort();
                (
                    l.layer.id.clone(),
                    l.revision,
                    l.iter().map(|(_, f)| (*f).clone()).collect(),
                    found,
                )
            })
            .collect()
    }

    #[test]
    fn round_trip_keeps_features_order_index_and_stats() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.snapshot");
        let e = engine();
        let size = write(&e, &head(), &path).unwrap();
        assert_eq!(size, std::fs::metadata(&path).unwrap().len());
        let s = Snapshot::open(&path).unwrap();
        assert_eq!(s.head, head());
        let back = s.load().unwrap();
        assert_eq!(dump(&back), dump(&e));
        let (a, b) = (e.layer("dltb").unwrap(), back.layer("dltb").unwrap());
        let (a, b) = (a.read(), b.read());
        assert_eq!(b.len(), 49);
        assert_eq!(a.property_stats(), b.property_stats());
        assert_eq!(a.stats(), b.stats());
        assert!(b.get("p4").is_none());
        // The reloaded index takes changes as the original does.
        drop(b);
        let b = back.layer("dltb").unwrap();
        let mut b = b.write();
        assert!(b.delete("p5"));
        assert_eq!(b.len(), 48);
    }

    #[test]
    fn writes_cut_short_are_cleared_and_nothing_else() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.snapshot");
        let file = |name: &str, age_s: u64| {
            let p = dir.path().join(name);
            let f = std::fs::File::create(&p).unwrap();
            let t = std::time::SystemTime::now() - std::time::Duration::from_secs(age_s);
            f.set_modified(t).unwrap();
            p
        };
        let killed = file(".s.snapshot.writing-aB3dE9", 3600);
        let running = file(".s.snapshot.writing-Zx81Qw", 5);
        let other_db = file(".t.snapshot.writing-Qq1234", 3600);
        let unrelated = file("notes.txt", 3600);
        write(&engine(), &head(), &path).unwrap();
        assert!(!killed.exists());
        assert!(running.exists() && other_db.exists() && unrelated.exists());
        // the write itself leaves only the snapshot
        let left: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with(".s.snapshot."))
            .collect();
        assert_eq!(left, vec![".s.snapshot.writing-Zx81Qw".to_string()]);
    }

    #[test]
    fn every_truncation_and_flipped_byte_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.snapshot");
        write(&engine(), &head(), &path).unwrap();
        let good = std::fs::read(&path).unwrap();
        let bad = dir.path().join("bad");
        let refused = |bytes: &[u8]| {
            std::fs::write(&bad, bytes).unwrap();
            Snapshot::open(&bad).and_then(Snapshot::load).is_err()
        };
        for cut in (0..good.len()).step_by(7).chain([good.len() - 1]) {
            assert!(refused(&good[..cut]), "cut at {cut}");
        }
        for at in (0..good.len()).step_by(5) {
            let mut b = good.clone();
            b[at] ^= 0x10;
            assert!(refused(&b), "flip at {at}");
        }
        let mut longer = good.clone();
        longer.push(0);
        assert!(refused(&longer));
        assert!(!refused(&good));
    }
}
