//! `perfkit flamegraph`, `perfkit diff` and `perfkit convert`: profiles
//! from files, in any format perfkit reads, to the formats it writes.

use std::{
    io::{IsTerminal, Read, Write},
    path::{Path, PathBuf},
};

use anyhow::{Context, Result, bail};
use clap::{Args, ValueEnum};
use perfkit_flamegraph::{DiffOptions, Palette, SvgOptions};
use perfkit_formats::{OutputFormat, ReadOptions, Roots};
use perfkit_model::Profile;

use crate::output::Output;

/// Flame graph drawing options shared by the commands that draw.
#[derive(Debug, Args)]
pub struct DrawArgs {
    /// Title at the top of the graph.
    #[arg(long, value_name = "TEXT")]
    title: Option<String>,

    /// A line of text under the title.
    #[arg(long, value_name = "TEXT")]
    subtitle: Option<String>,

    /// Colour palette: hot, mem, io, wakeup, java, js, perl, python, rust, red, green, blue, aqua,
    /// yellow, purple, orange. Default: java (user warm, kernel orange, inlined aqua).
    #[arg(long, value_name = "NAME", value_parser = perfkit_flamegraph::parse_palette)]
    colors: Option<Palette>,

    /// Icicle graph: roots at the top, stacks growing down.
    #[arg(long, alias = "inverted")]
    icicle: bool,

    /// Reverse the stacks: innermost frames become the roots (who calls the hot functions).
    #[arg(long)]
    reverse: bool,

    /// Leave out frames narrower than this percentage of the graph's width.
    #[arg(long, value_name = "PERCENT", default_value_t = 0.01)]
    min_width: f64,

    /// What the counts are, in tooltips.
    #[arg(long, value_name = "NAME", default_value = "samples")]
    count_name: String,

    /// Image width in pixels (default: fit the window).
    #[arg(long, value_name = "PIXELS")]
    width: Option<usize>,
}

impl DrawArgs {
    fn svg_options(&self, default_title: &str) -> SvgOptions {
        let mut o = SvgOptions::new(self.title.clone().unwrap_or_else(|| default_title.to_owned()));
        o.subtitle = self.subtitle.clone();
        if let Some(p) = self.colors {
            o.palette = p;
        }
        o.inverted = self.icicle;
        o.reverse = self.reverse;
        o.min_width = self.min_width;
        o.count_name = self.count_name.clone();
        o.width = self.width;
        o
    }
}

/// How inputs are read, shared by the commands that read profiles.
#[derive(Debug, Args)]
pub struct ReadArgs {
    /// Root frames for `perf script` input: command, process or thread.
    #[arg(long, value_enum, default_value_t)]
    roots: RootsArg,
}

impl ReadArgs {
    /// Options reading within the process's budget (`--max-memory`).
    fn options(&self) -> ReadOptions {
        self.roots.read_options()
    }
}

/// Parses `--max-memory` (perfkit_safeio's sizes: 512M, 2G, bytes).
pub fn parse_size(s: &str) -> Result<u64, String> {
    perfkit_safeio::parse_size(s).map_err(|e| e.to_string())
}

/// Keeps `bytes` charged to the process's budget for the rest of the job
/// (what a command holds from untrusted input), naming `what` if it does
/// not fit.
fn keep_charged(bytes: u64, what: &str) -> Result<()> {
    perfkit_safeio::Budget::process().charge(bytes, what)?.keep();
    Ok(())
}

/// The root frame of each stack, for `perf script` input.
#[derive(Clone, Copy, Debug, Default, ValueEnum)]
enum RootsArg {
    /// The command name: threads and processes of one name merge.
    #[default]
    Command,
    /// One root per process (name-PID).
    Process,
    /// One root per thread (name-PID/TID).
    Thread,
}

impl RootsArg {
    fn read_options(self) -> ReadOptions {
        let mut o = ReadOptions::default();
        o.roots = match self {
            RootsArg::Command => Roots::Command,
            RootsArg::Process => Roots::Process,
            RootsArg::Thread => Roots::Thread,
        };
        o
    }
}

const FLAMEGRAPH_EXAMPLES: &str = "\
Examples:
  perfkit flamegraph api.folded -o api.svg
  perf script | perfkit flamegraph > perf.svg
  perfkit flamegraph --icicle --colors mem --title 'allocations' allocs.folded
  perfkit flamegraph --roots thread perf.script -o per-thread.svg

Inputs: folded stacks, `perf script` output, perfkit JSON, pprof (.pb.gz), and
DTrace, macOS sample, VTune and other formats inferno collapses; detected from
the content.";

/// Draw a flame graph from existing profiles.
///
/// Reads each INPUT (or standard input), detects its format, and draws one
/// flame graph of all of them together.
#[derive(Debug, Args)]
#[command(after_help = FLAMEGRAPH_EXAMPLES)]
pub struct FlamegraphArgs {
    /// Profiles to draw; `-` or none reads standard input.
    #[arg(value_name = "INPUT")]
    inputs: Vec<PathBuf>,

    /// Where to write the SVG; `-` for standard output (the default when
    /// standard output is not a terminal).
    #[arg(short, long, value_name = "FILE")]
    output: Option<PathBuf>,

    #[command(flatten)]
    read: ReadArgs,

    #[command(flatten)]
    draw: DrawArgs,
}

pub fn flamegraph(args: FlamegraphArgs) -> Result<()> {
    let output = args.output.clone().unwrap_or_else(|| default_output("flame.svg"));
    let out = Output::create(&output)?;
    let inputs = inputs_or_stdin(&args.inputs);
    let read_opts = args.read.options();
    // Each input stays as read (charged to the budget); folded input is
    // drawn from it without a copy.
    let datas = inputs.iter().map(|i| read_input(i)).collect::<Result<Vec<_>>>()?;
    let mut texts = Vec::with_capacity(datas.len());
    for (input, data) in inputs.iter().zip(&datas) {
        let (_, text) = perfkit_formats::read_folded(data, &read_opts).with_context(|| describe(input))?;
        if let std::borrow::Cow::Owned(t) = &text {
            keep_charged(t.len() as u64, &describe(input))?;
        }
        // What the renderer keeps per line (the line and its merged frames).
        keep_charged(64 * text.lines().count() as u64, &describe(input))?;
        texts.push(text);
    }
    let default_title = if inputs.len() == 1 && inputs[0] != Path::new("-") {
        format!("Flame graph: {}", inputs[0].display())
    } else {
        "Flame graph".to_owned()
    };
    let options = args.draw.svg_options(&default_title);
    let written = out.path_display();
    out.commit(|w| {
        perfkit_flamegraph::render_folded(texts.iter().flat_map(|t| t.lines()), &options, w)
            .with_context(|| format!("rendering {}", inputs.iter().map(|p| describe(p)).collect::<Vec<_>>().join(", ")))
    })?;
    if let Some(p) = written {
        eprintln!("wrote {p}");
    }
    Ok(())
}

const DIFF_EXAMPLES: &str = "\
Examples:
  perfkit diff before.folded after.folded -o diff.svg
  perfkit diff --normalize v1.pb.gz v2.pb.gz --top 20
  perfkit diff --negate before.json after.json -o what-went-away.svg

Frames are sized by AFTER (by BEFORE with --negate) and coloured by the change
of their self count: red grew, blue shrank. The summary on standard output
lists the functions whose share of samples changed most (self share: samples
where the function is the innermost frame; total: anywhere on the stack).";

/// Compare two profiles: a differential flame graph and the functions
/// whose share changed most.
#[derive(Debug, Args)]
#[command(after_help = DIFF_EXAMPLES)]
pub struct DiffArgs {
    /// The earlier profile (any format perfkit reads).
    #[arg(value_name = "BEFORE")]
    before: PathBuf,

    /// The later profile.
    #[arg(value_name = "AFTER")]
    after: PathBuf,

    /// Where to write the differential flame graph; `-` for standard output
    /// (the summary then goes to standard error).
    #[arg(short, long, value_name = "FILE", default_value = "diff.svg")]
    output: PathBuf,

    /// Scale BEFORE to AFTER's total sample count, so profiles of different
    /// lengths compare by share.
    #[arg(long)]
    normalize: bool,

    /// Size frames by BEFORE instead of AFTER (shows what went away).
    #[arg(long)]
    negate: bool,

    /// Ignore hexadecimal addresses in frame names (JIT code).
    #[arg(long)]
    strip_hex: bool,

    /// Functions to list in the summary.
    #[arg(long, value_name = "N", default_value_t = 10)]
    top: usize,

    /// Print the summary as JSON (all functions, most changed first).
    #[arg(long)]
    json: bool,

    #[command(flatten)]
    read: ReadArgs,

    #[command(flatten)]
    draw: DrawArgs,
}

pub fn diff(args: DiffArgs) -> Result<()> {
    let out = Output::create(&args.output)?;
    let read_opts = args.read.options();
    let load = |path: &Path| -> Result<(String, Profile)> {
        let data = read_input(path)?;
        let (_, profile) = perfkit_formats::read_profile(&data, &read_opts).with_context(|| describe(path))?;
        keep_charged(perfkit_formats::profile_bytes(&profile), &describe(path))?;
        // Frames shared by many stacks unfold: charged before they are.
        keep_charged(perfkit_formats::folded_bytes(&profile), &describe(path))?;
        let mut folded = Vec::new();
        profile.write_folded(&mut folded)?;
        Ok((String::from_utf8(folded).expect("folded output is UTF-8"), profile))
    };
    let (before_folded, before) = load(&args.before)?;
    let (after_folded, after) = load(&args.after)?;
    for (p, path) in [(&before, &args.before), (&after, &args.after)] {
        if p.total_samples() == 0 {
            bail!("{} has no samples to compare", describe(path));
        }
    }
    let title = format!("Differential flame graph: {} → {}", args.before.display(), args.after.display());
    let mut options = args.draw.svg_options(&title);
    if options.subtitle.is_none() {
        options.subtitle = Some(format!(
            "{} samples before, {} after{}; red grew, blue shrank",
            before.total_samples(),
            after.total_samples(),
            if args.normalize { " (before normalized)" } else { "" }
        ));
    }
    let mut diff_opts = DiffOptions::default();
    diff_opts.normalize = args.normalize;
    diff_opts.negate = args.negate;
    diff_opts.strip_hex = args.strip_hex;
    let written = out.path_display();
    out.commit(|w| {
        perfkit_flamegraph::render_diff(&before_folded, &after_folded, &options, &diff_opts, w)
            .context("rendering the differential flame graph")
    })?;

    let deltas = perfkit_model::diff_functions(&before, &after);
    // With the graph on standard output, the summary goes to standard
    // error: one stream, one document.
    let mut o: Box<dyn Write> = if args.output == Path::new("-") {
        Box::new(std::io::stderr().lock())
    } else {
        Box::new(std::io::stdout().lock())
    };
    if args.json {
        let doc = perfkit_model::DiffReport::new((&args.before, &before), (&args.after, &after), &deltas);
        writeln!(o, "{}", serde_json::to_string_pretty(&doc)?)?;
    } else {
        perfkit_model::write_diff_summary(&mut o, &deltas, before.total_samples(), after.total_samples(), args.top)?;
    }
    o.flush()?;
    if let Some(p) = written {
        eprintln!("wrote {p}");
    }
    Ok(())
}

const CONVERT_EXAMPLES: &str = "\
Examples:
  perfkit convert api.folded -f pprof -o api.pb.gz    # for go tool pprof, Pyroscope, Parca
  perf script | perfkit convert -f folded > perf.folded
  perfkit convert profile.pb.gz -f json | jq '.stacks[0]'";

/// Convert a profile between formats.
///
/// Reads folded stacks, `perf script` output, perfkit JSON, pprof or another
/// format inferno collapses, and writes svg, folded, pprof or json.
#[derive(Debug, Args)]
#[command(after_help = CONVERT_EXAMPLES)]
pub struct ConvertArgs {
    /// The profile to read; `-` or none reads standard input.
    #[arg(value_name = "INPUT")]
    input: Option<PathBuf>,

    /// The format to write: svg, folded, pprof or json.
    #[arg(short, long, value_name = "FORMAT")]
    format: OutputFormat,

    /// Where to write; `-` for standard output (the default when standard
    /// output is not a terminal, else the format's usual file name).
    #[arg(short, long, value_name = "FILE")]
    output: Option<PathBuf>,

    #[command(flatten)]
    read: ReadArgs,

    #[command(flatten)]
    draw: DrawArgs,
}

pub fn convert(args: ConvertArgs) -> Result<()> {
    let output = args.output.clone().unwrap_or_else(|| default_output(args.format.default_file_name()));
    let out = Output::create(&output)?;
    let input = args.input.clone().unwrap_or_else(|| PathBuf::from("-"));
    let data = read_input(&input)?;
    let (_, profile) = perfkit_formats::read_profile(&data, &args.read.options()).with_context(|| describe(&input))?;
    keep_charged(perfkit_formats::profile_bytes(&profile), &describe(&input))?;
    // Every output is drawn or written from the folded stacks, which frames
    // shared by many stacks unfold into.
    keep_charged(perfkit_formats::folded_bytes(&profile), &describe(&input))?;
    if profile.total_samples() == 0 {
        bail!("{} has no samples", describe(&input));
    }
    let written = out.path_display();
    let title = if profile.meta.command.is_empty() {
        format!("Flame graph: {}", input.display())
    } else {
        format!("perfkit profile: {}", profile.meta.command)
    };
    write_profile(out, args.format, &profile, &args.draw.svg_options(&title))?;
    if let Some(p) = written {
        eprintln!("wrote {p}");
    }
    Ok(())
}

/// Writes `profile` in `format` to `out`.
pub fn write_profile(out: Output, format: OutputFormat, profile: &Profile, svg: &SvgOptions) -> Result<()> {
    out.commit(|w| match format {
        OutputFormat::Svg => perfkit_flamegraph::render_svg(profile, svg, w).context("rendering the flame graph"),
        other => other.write(profile, w).with_context(|| format!("writing {other}")),
    })
}

/// Standard output when it is not a terminal, else `name`.
fn default_output(name: &str) -> PathBuf {
    if std::io::stdout().is_terminal() { PathBuf::from(name) } else { PathBuf::from("-") }
}

fn inputs_or_stdin(inputs: &[PathBuf]) -> Vec<PathBuf> {
    if inputs.is_empty() { vec![PathBuf::from("-")] } else { inputs.to_vec() }
}

fn describe(path: &Path) -> String {
    if path == Path::new("-") { "standard input".to_owned() } else { path.display().to_string() }
}

/// An input's bytes, charged to the process's budget as they are read
/// (and kept charged: they live for the job): a file or a pipe larger than
/// the budget stops here, naming the input and the limit, before it is
/// held.
fn read_input(path: &Path) -> Result<Vec<u8>> {
    let name = describe(path);
    if path == Path::new("-") {
        read_charged(std::io::stdin().lock(), &name).context("reading standard input")
    } else {
        let file = std::fs::File::open(path).with_context(|| format!("cannot read {}", path.display()))?;
        read_charged(file, &name).with_context(|| format!("cannot read {}", path.display()))
    }
}

/// Everything `input` holds, the buffer charged as it is read and kept
/// charged for the job.
pub fn read_charged(input: impl Read, name: &str) -> Result<Vec<u8>> {
    let (data, charge) = perfkit_safeio::Budget::process().read_all(input, name)?;
    charge.keep();
    Ok(data)
}
