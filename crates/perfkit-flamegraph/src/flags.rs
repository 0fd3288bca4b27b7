//! Flame graph drawing flags (`--title`, `--colors`, `--icicle`...) for
//! programs built with clap, and their conversion to [`SvgOptions`].
//! Enabled by the `clap` feature.
//!
//! ```
//! use clap::Parser;
//! use perfkit_flamegraph::flags::DrawArgs;
//!
//! #[derive(Parser)]
//! struct Cli {
//!     #[command(flatten)]
//!     draw: DrawArgs,
//! }
//!
//! let cli = Cli::parse_from(["tool", "--icicle", "--colors", "mem"]);
//! let options = cli.draw.svg_options("Allocations");
//! assert!(options.inverted);
//! assert_eq!(options.title, "Allocations");
//! ```

use clap::Args;

use crate::{Palette, SvgOptions, parse_palette};

/// Flame graph drawing options shared by the commands that draw.
#[derive(Debug, Args)]
#[non_exhaustive]
pub struct DrawArgs {
    /// Title at the top of the graph.
    #[arg(long, value_name = "TEXT")]
    pub title: Option<String>,

    /// A line of text under the title.
    #[arg(long, value_name = "TEXT")]
    pub subtitle: Option<String>,

    /// Colour palette: hot, mem, io, wakeup, java, js, perl, python, rust, red, green, blue, aqua,
    /// yellow, purple, orange. Default: java (user warm, kernel orange, inlined aqua).
    #[arg(long, value_name = "NAME", value_parser = parse_palette)]
    pub colors: Option<Palette>,

    /// Icicle graph: roots at the top, stacks growing down.
    #[arg(long, alias = "inverted")]
    pub icicle: bool,

    /// Reverse the stacks: innermost frames become the roots (who calls the hot functions).
    #[arg(long)]
    pub reverse: bool,

    /// Leave out frames narrower than this percentage of the graph's width.
    #[arg(long, value_name = "PERCENT", default_value_t = 0.01)]
    pub min_width: f64,

    /// What the counts are, in tooltips.
    #[arg(long, value_name = "NAME", default_value = "samples")]
    pub count_name: String,

    /// Image width in pixels (default: fit the window).
    #[arg(long, value_name = "PIXELS")]
    pub width: Option<usize>,
}

impl DrawArgs {
    /// The drawing options these flags choose, titled `default_title`
    /// unless `--title` gives one.
    pub fn svg_options(&self, default_title: &str) -> SvgOptions {
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

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(flatten)]
        draw: DrawArgs,
    }

    fn parse(args: &[&str]) -> Result<DrawArgs, clap::Error> {
        Cli::try_parse_from(std::iter::once("draw").chain(args.iter().copied())).map(|c| c.draw)
    }

    #[test]
    fn defaults_are_svg_options_defaults() {
        let o = parse(&[]).unwrap().svg_options("T");
        let d = SvgOptions::new("T");
        assert_eq!(o.title, d.title);
        assert_eq!(o.min_width, 0.01);
        assert_eq!(o.count_name, "samples");
        assert_eq!(o.palette, d.palette);
        assert!(!o.inverted && !o.reverse && o.width.is_none() && o.subtitle.is_none());
    }

    #[test]
    fn flags_set_options() {
        let a =
            parse(&["--title", "X", "--subtitle", "s", "--colors", "mem", "--inverted", "--reverse", "--width", "800"])
                .unwrap();
        let o = a.svg_options("T");
        assert_eq!(o.title, "X");
        assert_eq!(o.subtitle.as_deref(), Some("s"));
        assert_eq!(o.palette, parse_palette("mem").unwrap());
        assert!(o.inverted && o.reverse);
        assert_eq!(o.width, Some(800));
        assert!(parse(&["--colors", "plaid"]).is_err());
        assert!(parse(&["--width", "-1"]).is_err());
    }
}
