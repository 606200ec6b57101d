//! Secrets read from files: a token file must be readable by its owner only (mode 0600), and a
//! token never shows in `Debug` output or logs.

use std::fmt;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

/// A shared secret presented as `Authorization: Bearer ...`. `Debug` hides it.
#[derive(Clone, PartialEq, Eq)]
pub struct Token(String);

impl Token {
    pub fn new(secret: impl Into<String>) -> Self {
        Self(secret.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Token(***)")
    }
}

/// Reads a token file: it must exist, be readable by its owner only, and hold at least 16
/// characters. The error says what to do, without the file's content.
pub fn read_token(path: &Path) -> Result<Token, String> {
    let meta = std::fs::metadata(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => "does not exist; create it with a random token, e.g. \
             `head -c 32 /dev/urandom | base64 > FILE && chmod 600 FILE`"
            .to_owned(),
        _ => format!("cannot be read ({e}); check its path and permissions"),
    })?;
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(format!(
            "is readable by group or others (mode {mode:04o}); run chmod 600 {}",
            path.display()
        ));
    }
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot be read ({e}); it must hold the token as text"))?;
    let token = text.trim();
    if token.len() < 16 {
        return Err("holds fewer than 16 characters: write a long random token into it".to_owned());
    }
    Ok(Token::new(token))
}
