//! The TCP frontend: each connection proxied round-robin to a server that is UP and `ready`,
//! counted per server (what a drain waits for).

use super::instance::Lb;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;

/// A proxied session: counted on the frontend and (once connected) on a server, by the
/// "process" (generation) that accepted it: after a reload the old process's sessions run on
/// uncounted, as they would in the old process that `haproxy -sf` leaves finishing them.
pub(super) struct Session {
    lb: Arc<Lb>,
    server: Option<usize>,
    generation: u64,
}

impl Session {
    fn open(lb: Arc<Lb>) -> Session {
        let generation = {
            let mut st = lb.lock();
            st.fe_scur += 1;
            st.fe_smax = st.fe_smax.max(st.fe_scur);
            st.fe_stot += 1;
            st.generation
        };
        Session {
            lb,
            server: None,
            generation,
        }
    }

    fn assign(&mut self, idx: usize) {
        let mut st = self.lb.lock();
        if st.generation != self.generation {
            return;
        }
        let s = &mut st.servers[idx];
        s.scur += 1;
        s.smax = s.smax.max(s.scur);
        s.stot += 1;
        self.server = Some(idx);
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        let mut st = self.lb.lock();
        if st.generation != self.generation {
            return;
        }
        st.fe_scur = st.fe_scur.saturating_sub(1);
        if let Some(i) = self.server {
            st.servers[i].scur = st.servers[i].scur.saturating_sub(1);
        }
    }
}

pub(super) async fn frontend_loop(lb: Arc<Lb>, listener: &TcpListener) {
    let mut conns = JoinSet::new();
    loop {
        let Ok((client, _)) = listener.accept().await else {
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        while conns.try_join_next().is_some() {}
        conns.spawn(proxy(lb.clone(), client));
    }
}

/// Proxy one client connection to the next usable server; close it if there is none.
pub(super) async fn proxy(lb: Arc<Lb>, mut client: TcpStream) {
    let mut session = Session::open(lb.clone());
    let order = lb.lock().pick_order();
    for idx in order {
        let port = lb.info.servers[idx].port;
        match tokio::time::timeout(
            Duration::from_secs(1),
            TcpStream::connect(("127.0.0.1", port)),
        )
        .await
        {
            Ok(Ok(mut server)) => {
                session.assign(idx);
                let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                return;
            }
            _ => lb.lock().servers[idx].econ += 1,
        }
    }
}
