//! Progress of long work, for whoever shows it: the library says how far
//! it is; the binary draws a bar on a terminal (or nothing, under cron).

/// One piece of long work under way.
pub trait Progress: Sync {
    /// The work's size, when it is known.
    fn set_total(&self, _total: u64) {}
    /// One more unit done (`what`, when it has a name: an article's file).
    fn advance(&self, _what: &str) {}
    /// The work is over.
    fn finish(&self) {}
}

/// Who watches the pipeline's long work.
pub trait Watcher: Send + Sync {
    /// Articles being read and summarized.
    fn articles(&self) -> Box<dyn Progress>;
    /// Messages being sent.
    fn deliveries(&self) -> Box<dyn Progress>;
}

/// No one: nothing is shown.
#[derive(Debug, Clone, Copy, Default)]
pub struct Silent;

impl Progress for Silent {}

impl Watcher for Silent {
    fn articles(&self) -> Box<dyn Progress> {
        Box::new(Silent)
    }

    fn deliveries(&self) -> Box<dyn Progress> {
        Box::new(Silent)
    }
}
