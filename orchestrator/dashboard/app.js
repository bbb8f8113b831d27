// The dashboard: the token from the URL, the VM list and per-VM pages (#/ and #/vm/NAME), kept live by the
// event stream (VM states, stats records, chat, copies) and GET /v1/figures every 2 s (device rates).
import { createApi, takeToken } from './api.js';
import { renderList } from './list-view.js';
import { Store } from './store.js';
import { renderVm } from './vm-view.js';

const main = document.getElementById('main');
const conn = document.getElementById('conn');
const token = takeToken();

function setConn(state, why) {
  conn.dataset.state = state;
  conn.textContent = state === 'live' ? 'live' : `disconnected${why ? `: ${why}` : ', retrying'}`;
}

if (!token) {
  main.innerHTML = '<h1>No token</h1><p>Open the address <code>vmgmt dashboard</code> prints: it carries the token after <code>#token=</code>.</p>';
  setConn('down', 'no token');
} else {
  const api = createApi(token);
  const store = new Store();
  let leave = () => {};

  const route = () => {
    leave();
    const m = /^#\/vm\/([^/]+)$/.exec(location.hash);
    leave = m ? renderVm(main, store, api, decodeURIComponent(m[1])) : renderList(main, store);
  };

  async function loadList() {
    const { vms } = await api.get('/v1/vms');
    const fresh = vms.filter((v) => !store.vms.has(v.name));
    store.setList(vms);
    await Promise.all(
      fresh.map(async (v) => {
        const stats = await api.get(`/v1/vms/${encodeURIComponent(v.name)}/stats?limit=120`).catch(() => undefined);
        for (const s of stats?.samples ?? []) store.addSample(v.name, s, stats.share, stats.host);
      }),
    );
    store.changed({ kind: 'stats' });
  }

  function onEvent(e) {
    switch (e.kind) {
      case 'stream.open':
        // Back after a break the daemon could not fully make up for (its buffer moved on, or it restarted).
        if (e.data.resume && !e.data.resume.complete) void loadList().then(() => route());
        return;
      case 'vm.state': {
        const vm = store.vms.get(e.data.vm);
        if (!vm || e.data.state === 'removed' || e.data.previous === null) void loadList().then(() => route());
        else {
          vm.summary = { ...vm.summary, state: e.data.state };
          if (e.data.state !== 'running') vm.figures = null; // its QEMU figures are gone with it; the next poll says
          store.changed({ kind: 'list' });
        }
        return;
      }
      case 'stats.record':
        store.addSample(e.data.vm, e.data.sample, e.data.share, e.data.host);
        store.changed({ kind: 'stats', vm: e.data.vm });
        return;
      case 'chat.message': {
        const who = `${e.data.from.vm ?? '@host'}/${e.data.from.name}`;
        if (e.data.from.vm) store.log(e.data.from.vm, 'chat', { line: `${who} -> ${e.data.to}${e.data.callId ? ' (call)' : ''}: ${e.data.text ?? `<${e.data.dataBase64.length} base64 chars>`}` });
        return;
      }
      case 'chat.presence':
        if (e.data.peer.vm) store.log(e.data.peer.vm, 'chat', { meta: true, line: `${e.data.event} ${e.data.peer.name} (${e.data.reason})` });
        store.changed({ kind: 'presence' });
        return;
      case 'transfer': {
        const t = e.data;
        store.log(t.vm, 'files', { line: `copy #${t.transferId} ${t.direction} ${t.guestPath}: ${t.phase}${t.phase === 'done' ? `, ${t.bytes} bytes` : t.error ? `: ${t.error}` : ''}` });
        return;
      }
    }
  }

  const poll = async () => {
    try {
      store.setFigures(await api.get('/v1/figures'));
    } catch {
      // the connection indicator says so
    }
  };

  loadList()
    .then(() => {
      route();
      window.addEventListener('hashchange', route);
      api.follow('kinds=vm.state,stats.record,chat.message,chat.presence,transfer', onEvent, setConn);
      void poll();
      setInterval(poll, 2000);
    })
    .catch((err) => {
      main.innerHTML = '';
      const p = document.createElement('p');
      p.className = 'error';
      p.textContent = `Cannot read the VM list: ${err.message}`;
      main.append(p);
      setConn('down', err.message);
    });
}
