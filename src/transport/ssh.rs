//! SSH transport on russh. (Being built under issue 4; until then connecting reports clearly that
//! SSH is not available in this build.)

use super::{ExecOpts, ExecOutput, TransportError};

#[derive(Clone, Debug)]
pub struct SshTransport {
    pub host: String,
    pub port: u16,
}

impl SshTransport {
    pub fn label(&self) -> String {
        if self.port == 22 {
            self.host.clone()
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }

    pub async fn exec(&self, _cmd: &str, _opts: ExecOpts) -> Result<ExecOutput, TransportError> {
        Err(TransportError::Connect {
            host: self.label(),
            msg: "SSH transport not built yet".into(),
        })
    }
}
