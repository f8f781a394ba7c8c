//! Sampling split over processes that a scheduler runs (Slurm array tasks, Kubernetes Indexed
//! Jobs, or a shell loop): `prime generate --samples N --shard I/K --out DIR` draws shard I's
//! part of the N samples into `DIR/shard-I-of-K.jsonl` (one line per sample, as `--json` prints)
//! and its manifest `DIR/shard-I-of-K.json`; `prime merge DIR --out FILE` checks that all K are
//! there and complete and writes the samples in seed order with one manifest.
//!
//! Each file is written beside its path and renamed when whole, the manifest last, so a shard
//! counts as complete only once its manifest exists; a killed process leaves at most a samples
//! file without a manifest, which `merge` refuses and a re-run replaces.

use std::ops::Range;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail, ensure};
use clap::Args;
use prime_core::GenerationRequest;
use prime_core::output::FileOutput;
use serde::{Deserialize, Serialize};

/// Shard I of K (I counted from 0).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    /// Which shard, 0 ≤ index < count.
    pub index: usize,
    /// How many shards the samples are split into.
    pub count: usize,
}

/// `--shard`: `I/K`, or `auto` (from the scheduler's environment).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShardSpec {
    /// Given on the command line.
    Given(Shard),
    /// `SLURM_ARRAY_TASK_ID` (less `SLURM_ARRAY_TASK_MIN`) of `SLURM_ARRAY_TASK_COUNT`, or
    /// `JOB_COMPLETION_INDEX` of `--shards`.
    Auto,
}

/// Parses `--shard`.
pub fn parse_spec(s: &str) -> Result<ShardSpec, String> {
    if s == "auto" {
        return Ok(ShardSpec::Auto);
    }
    let (i, k) = s.split_once('/').ok_or_else(|| format!("expected I/K (e.g. 0/4) or auto, got `{s}`"))?;
    let index = i.trim().parse().map_err(|_| format!("bad shard index in `{s}`"))?;
    let count = k.trim().parse().map_err(|_| format!("bad shard count in `{s}`"))?;
    Shard::new(index, count).map(ShardSpec::Given).map_err(|e| e.to_string())
}

impl Shard {
    /// Shard `index` of `count`, checked.
    pub fn new(index: usize, count: usize) -> Result<Self> {
        ensure!(count > 0, "the number of shards must be positive");
        ensure!(index < count, "shard {index} does not exist: shards are numbered 0 to {}", count - 1);
        Ok(Self { index, count })
    }

    /// The shard `spec` names; `auto` reads the scheduler's variables through `env`.
    pub fn resolve(spec: ShardSpec, shards: Option<usize>, env: impl Fn(&str) -> Option<String>) -> Result<Self> {
        let number = |name: &str| -> Result<Option<usize>> {
            env(name).map(|v| v.trim().parse().with_context(|| format!("{name}={v:?} is not a number"))).transpose()
        };
        match spec {
            ShardSpec::Given(shard) => {
                ensure!(shards.is_none_or(|k| k == shard.count), "--shards disagrees with --shard");
                Ok(shard)
            }
            ShardSpec::Auto => {
                if let (Some(id), Some(count)) = (number("SLURM_ARRAY_TASK_ID")?, number("SLURM_ARRAY_TASK_COUNT")?) {
                    let min = number("SLURM_ARRAY_TASK_MIN")?.unwrap_or(0);
                    let index = id.checked_sub(min).context("SLURM_ARRAY_TASK_ID is below SLURM_ARRAY_TASK_MIN")?;
                    return Self::new(index, shards.unwrap_or(count));
                }
                if let Some(index) = number("JOB_COMPLETION_INDEX")? {
                    let count =
                        shards.context("JOB_COMPLETION_INDEX is set: give the number of shards with --shards K")?;
                    return Self::new(index, count);
                }
                bail!(
                    "--shard auto needs SLURM_ARRAY_TASK_ID and SLURM_ARRAY_TASK_COUNT (a Slurm array task) or \
                     JOB_COMPLETION_INDEX with --shards (a Kubernetes Indexed Job)"
                )
            }
        }
    }

    /// The sample indices (0 ≤ j < `samples`) this shard draws: contiguous, sizes differing by
    /// at most one, together every index once.
    pub fn range(self, samples: usize) -> Range<usize> {
        (self.index * samples / self.count)..((self.index + 1) * samples / self.count)
    }

    fn stem(self) -> String {
        format!("shard-{}-of-{}", self.index, self.count)
    }

    /// The samples file in `dir`.
    pub fn samples_path(self, dir: &Path) -> PathBuf {
        dir.join(format!("{}.jsonl", self.stem()))
    }

    /// The manifest in `dir`.
    pub fn manifest_path(self, dir: &Path) -> PathBuf {
        dir.join(format!("{}.json", self.stem()))
    }
}

/// What a shard's manifest records: enough to tell shards of one run from another's.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ShardManifest {
    /// This shard.
    pub shard: usize,
    /// Of how many.
    pub shards: usize,
    /// Samples of the whole run, N.
    pub samples: usize,
    /// Sample indices of this shard, [start, end): sample j has seed `request.settings.seed + j`.
    pub range: [usize; 2],
    /// The model's weights (FNV-1a of `model.safetensors`) and its folder, as given.
    pub model: ModelId,
    /// The request every sample was started from (its seed is sample 0's).
    pub request: GenerationRequest,
    /// Wall time of the shard's sampling.
    pub seconds: f64,
}

/// Which model a run used.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelId {
    /// How the model was named (`--model`, or the built-in demo).
    pub name: String,
    /// FNV-1a of its weights file.
    pub weights: String,
}

impl ShardManifest {
    /// Whether `other` is a shard of the same run (model, request, N and K).
    fn same_run(&self, other: &Self) -> bool {
        self.shards == other.shards
            && self.samples == other.samples
            && self.model.weights == other.model.weights
            && self.request == other.request
    }
}

/// What `generate` does about a shard whose files may already be in the folder.
pub enum ShardState {
    /// Complete, of this very run: nothing to do.
    Complete,
    /// Missing or incomplete: draw it.
    ToDraw,
}

/// Checks the shard's files in `dir` against the run `wanted` describes (its `seconds` aside):
/// complete and the same run, missing or incomplete, or — an error — another run's.
pub fn state(dir: &Path, shard: Shard, wanted: &ShardManifest) -> Result<ShardState> {
    let path = shard.manifest_path(dir);
    if !path.exists() || !shard.samples_path(dir).exists() {
        return Ok(ShardState::ToDraw);
    }
    let found = read_manifest(&path)?;
    ensure!(
        found.same_run(wanted),
        "{} belongs to another run (model, request, samples or shards differ): use another --out folder",
        path.display()
    );
    Ok(ShardState::Complete)
}

fn read_manifest(path: &Path) -> Result<ShardManifest> {
    let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    serde_json::from_str(&text).with_context(|| format!("{} is not a shard manifest", path.display()))
}

/// Writes a shard: its samples (one JSON line each), then its manifest, each whole or not at all.
pub fn write(dir: &Path, shard: Shard, lines: &[String], manifest: &ShardManifest) -> Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let mut text = lines.join("\n");
    text.push('\n');
    FileOutput::write_all_to(&shard.samples_path(dir), text.as_bytes())?;
    FileOutput::write_all_to(&shard.manifest_path(dir), serde_json::to_string_pretty(manifest)?.as_bytes())?;
    Ok(())
}

/// Arguments of `prime merge`.
#[derive(Args, Debug)]
pub struct MergeArgs {
    /// The folder the shards were written to (`generate --shard … --out DIR`).
    dir: PathBuf,
    /// Where to write all samples in seed order (JSON Lines); the manifest goes beside it, with
    /// `.manifest.json` appended to the name.
    #[arg(long)]
    out: PathBuf,
}

/// The merged run's manifest.
#[derive(Debug, Serialize)]
struct MergedManifest {
    samples: usize,
    shards: usize,
    model: ModelId,
    request: GenerationRequest,
    /// Per shard: its range and wall time.
    timing: Vec<ShardTiming>,
}

#[derive(Debug, Serialize)]
struct ShardTiming {
    shard: usize,
    range: [usize; 2],
    seconds: f64,
}

/// Runs `prime merge`.
pub fn merge(args: MergeArgs) -> Result<()> {
    let manifests = manifests_in(&args.dir)?;
    let first = manifests.first().with_context(|| format!("{} holds no shard manifest", args.dir.display()))?;
    let count = first.shards;
    let missing: Vec<String> =
        (0..count).filter(|&i| !manifests.iter().any(|m| m.shard == i)).map(|i| format!("{i}/{count}")).collect();
    ensure!(
        missing.is_empty(),
        "shards missing or incomplete in {}: {} (run them again)",
        args.dir.display(),
        missing.join(", ")
    );
    let mut lines = Vec::with_capacity(first.samples);
    let mut timing = Vec::with_capacity(count);
    for index in 0..count {
        let m = manifests.iter().find(|m| m.shard == index).context("checked above")?;
        ensure!(m.same_run(first), "shard {index}/{count} belongs to another run than shard {}/{count}", first.shard);
        let shard = Shard::new(index, count)?;
        let range = shard.range(first.samples);
        ensure!(m.range == [range.start, range.end], "shard {index}/{count}'s range disagrees with its manifest");
        let path = shard.samples_path(&args.dir);
        let text = std::fs::read_to_string(&path).with_context(|| format!("cannot read {}", path.display()))?;
        let got: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
        ensure!(
            got.len() == range.len(),
            "{} holds {} samples, its shard has {}",
            path.display(),
            got.len(),
            range.len()
        );
        for (line, j) in got.iter().zip(range.clone()) {
            let sample: serde_json::Value =
                serde_json::from_str(line).with_context(|| format!("{}: a line is not JSON", path.display()))?;
            let seed = first.request.settings.seed.checked_add(j as u64).context("seed overflow")?;
            ensure!(sample["seed"] == seed, "{}: sample {j} does not have seed {seed}", path.display());
            lines.push((*line).to_string());
        }
        timing.push(ShardTiming { shard: index, range: m.range, seconds: m.seconds });
    }
    let mut text = lines.join("\n");
    text.push('\n');
    FileOutput::write_all_to(&args.out, text.as_bytes())?;
    let merged = MergedManifest {
        samples: first.samples,
        shards: count,
        model: first.model.clone(),
        request: first.request.clone(),
        timing,
    };
    let mut manifest_path = args.out.clone().into_os_string();
    manifest_path.push(".manifest.json");
    FileOutput::write_all_to(Path::new(&manifest_path), serde_json::to_string_pretty(&merged)?.as_bytes())?;
    eprintln!("{} samples from {count} shards written to {}", first.samples, args.out.display());
    Ok(())
}

/// Every shard manifest in `dir` (files `shard-I-of-K.json`), of one K.
fn manifests_in(dir: &Path) -> Result<Vec<ShardManifest>> {
    let entries = std::fs::read_dir(dir).with_context(|| format!("cannot read the folder {}", dir.display()))?;
    let mut out: Vec<ShardManifest> = Vec::new();
    for entry in entries {
        let path = entry.with_context(|| format!("cannot read the folder {}", dir.display()))?.path();
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default();
        if name.starts_with("shard-") && name.ends_with(".json") {
            let m = read_manifest(&path)?;
            ensure!(
                out.first().is_none_or(|f| f.shards == m.shards),
                "{} holds shards of different counts: use one folder per run",
                dir.display()
            );
            out.push(m);
        }
    }
    out.sort_by_key(|m| m.shard);
    Ok(out)
}
