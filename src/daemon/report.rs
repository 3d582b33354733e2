//! One line for an error and its causes, for the binaries' last words. Each cause is
//! named once: some libraries (zbus, for one) put their source's text into their own
//! message and also return it as `source()`, so a plain chain printer repeats it.

use std::error::Error;

/// `outer: cause: deeper cause`, leaving out a cause whose text the line already ends
/// with.
pub fn one_line<'a>(chain: impl IntoIterator<Item = &'a (dyn Error + 'static)>) -> String {
    let mut line = String::new();
    for error in chain {
        let text = error.to_string();
        if line.is_empty() {
            line = text;
        } else if !line.ends_with(&text) {
            line.push_str(": ");
            line.push_str(&text);
        }
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug)]
    struct E(&'static str, Option<Box<E>>);

    impl std::fmt::Display for E {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str(self.0)
        }
    }

    impl Error for E {
        fn source(&self) -> Option<&(dyn Error + 'static)> {
            self.1.as_deref().map(|e| e as &(dyn Error + 'static))
        }
    }

    fn chain<'a>(e: &'a (dyn Error + 'static)) -> Vec<&'a (dyn Error + 'static)> {
        std::iter::successors(Some(e), |&e| e.source()).collect()
    }

    #[test]
    fn a_cause_already_in_the_text_is_not_repeated() {
        let io = E("No such file or directory (os error 2)", None);
        let zbus = E(
            "Failed to connect to `unix:path=/run/bus`: No such file or directory (os error 2)",
            Some(Box::new(io)),
        );
        let top = E("cannot own the name", Some(Box::new(zbus)));
        assert_eq!(
            one_line(chain(&top)),
            "cannot own the name: Failed to connect to `unix:path=/run/bus`: No such file or \
             directory (os error 2)"
        );
        let plain = E(
            "reading c.toml",
            Some(Box::new(E("permission denied", None))),
        );
        assert_eq!(one_line(chain(&plain)), "reading c.toml: permission denied");
    }
}
