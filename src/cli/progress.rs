//! Progress bars on stderr when it is a terminal (silent under cron): the
//! binary's side of the library's `Watcher`.

use std::io::IsTerminal;

use dailydigest::progress::{Progress, Silent, Watcher};

/// A bar drawn with indicatif.
struct Bar(indicatif::ProgressBar);

impl Progress for Bar {
    fn set_total(&self, total: u64) {
        self.0.set_length(total);
    }

    fn advance(&self, what: &str) {
        self.0.inc(1);
        if !what.is_empty() {
            self.0.set_message(what.to_owned());
        }
    }

    fn finish(&self) {
        self.0.finish_and_clear();
    }
}

/// Draws bars on a terminal.
struct Terminal;

impl Watcher for Terminal {
    fn articles(&self) -> Box<dyn Progress> {
        let bar = indicatif::ProgressBar::new_spinner();
        bar.set_style(
            indicatif::ProgressStyle::with_template(
                "{spinner} {pos} articles read ({per_sec}) {wide_msg}",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner()),
        );
        bar.enable_steady_tick(std::time::Duration::from_millis(120));
        Box::new(Bar(bar))
    }

    fn deliveries(&self) -> Box<dyn Progress> {
        let bar = indicatif::ProgressBar::new(0);
        bar.set_style(
            indicatif::ProgressStyle::with_template(
                "{bar:40} {pos}/{len} sent ({per_sec}, {eta} left)",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        Box::new(Bar(bar))
    }
}

/// Bars when stderr is a terminal, nothing otherwise.
pub(super) fn watcher() -> Box<dyn Watcher> {
    if std::io::stderr().is_terminal() {
        Box::new(Terminal)
    } else {
        Box::new(Silent)
    }
}
