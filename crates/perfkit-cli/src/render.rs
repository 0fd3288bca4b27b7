//! `perfkit flamegraph`, `perfkit diff` and `perfkit convert`: profiles
//! from files, in any format perfkit reads, to the formats it writes; the
//! flags are `perfkit_formats::flags`.

use std::{
    io::{IsTerminal, Read, Write},
    path::{Path, PathBuf},
};

use anyhow::{Context, Result, bail};
use perfkit_flamegraph::SvgOptions;
use perfkit_formats::{
    OutputFormat,
    flags::{ConvertArgs, DiffArgs, FlamegraphArgs},
};
use perfkit_model::Profile;

use crate::output::Output;

/// Keeps `bytes` charged to the process's budget for the rest of the job
/// (what a command holds from untrusted input), naming `what` if it does
/// not fit.
fn keep_charged(bytes: u64, what: &str) -> Result<()> {
    perfkit_safeio::Budget::process().charge(bytes, what)?.keep();
    Ok(())
}

pub(crate) const FLAMEGRAPH_EXAMPLES: &str = "\
Examples:
  perfkit flamegraph api.folded -o api.svg
  perf script | perfkit flamegraph > perf.svg
  perfkit flamegraph --icicle --colors mem --title 'allocations' allocs.folded
  perfkit flamegraph --roots thread perf.script -o per-thread.svg

Inputs: folded stacks, `perf script` output, perfkit JSON, pprof (.pb.gz), and
DTrace, macOS sample, VTune and other formats inferno collapses; detected from
the content.";

pub fn flamegraph(args: FlamegraphArgs) -> Result<()> {
    let output = args.output.clone().unwrap_or_else(|| default_output("flame.svg"));
    let out = Output::create(&output)?;
    let inputs = args.inputs();
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
    let options = args.svg_options();
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

pub(crate) const DIFF_EXAMPLES: &str = "\
Examples:
  perfkit diff before.folded after.folded -o diff.svg
  perfkit diff --normalize v1.pb.gz v2.pb.gz --top 20
  perfkit diff --negate before.json after.json -o what-went-away.svg

Frames are sized by AFTER (by BEFORE with --negate) and coloured by the change
of their self count: red grew, blue shrank. The summary on standard output
lists the functions whose share of samples changed most (self share: samples
where the function is the innermost frame; total: anywhere on the stack).";

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
    let options = args.svg_options(before.total_samples(), after.total_samples());
    let diff_opts = args.diff_options();
    let written = out.path_display();
    out.commit(|w| {
        perfkit_flamegraph::render_diff(&before_folded, &after_folded, &options, &diff_opts, w)
            .context("rendering the differential flame graph")
    })?;

    let deltas = perfkit_model::diff_functions(&before, &after);
    // With the graph on standard output, the summary goes to standard
    // error: one stream, one document.
    let mut o: Box<dyn Write> =
        if args.graph_to_stdout() { Box::new(std::io::stderr().lock()) } else { Box::new(std::io::stdout().lock()) };
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

pub(crate) const CONVERT_EXAMPLES: &str = "\
Examples:
  perfkit convert api.folded -f pprof -o api.pb.gz    # for go tool pprof, Pyroscope, Parca
  perf script | perfkit convert -f folded > perf.folded
  perfkit convert profile.pb.gz -f json | jq '.stacks[0]'";

pub fn convert(args: ConvertArgs) -> Result<()> {
    let output = args.output.clone().unwrap_or_else(|| default_output(args.format.default_file_name()));
    let out = Output::create(&output)?;
    let input = args.input();
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
    write_profile(out, args.format, &profile, &args.svg_options(&profile))?;
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
