//! What an idle actor's connection gives back while it stays open.

use super::Storage;

impl Storage {
    /// Frees the connection's cached pages and prepared statements (about a third of what an
    /// open actor holds). The next turn reads its pages again and prepares its statements
    /// again, a few tens of microseconds, so this is for actors that have been idle a while.
    pub(crate) fn trim(&self) {
        self.conn.flush_prepared_statement_cache();
        if let Err(e) = self.conn.release_memory() {
            tracing::debug!("releasing an idle actor's page cache: {e}");
        }
    }
}
