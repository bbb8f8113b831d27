// One VM's page: start / stop / kill (each asks first), live charts (guest CPU, steal and demand; the
// scheduler's share and host vCPU; device messages/s), the device's counters (and per channel), file activity and the chat
// log with a box to send a message as the host.
import { lineChart } from './charts.js';

const el = (tag, attrs = {}, ...children) => {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === 'class') e.className = v;
    else if (k.startsWith('data-')) e.dataset[k.slice(5).replace(/-(.)/g, (_, c) => c.toUpperCase())] = v;
    else e.setAttribute(k, v);
  }
  e.append(...children);
  return e;
};
const time = (d) => d.toTimeString().slice(0, 8);

export function renderVm(main, store, api, name) {
  const vm = store.vms.get(name);
  if (!vm) {
    main.replaceChildren(el('h1', {}, `No VM named ${name}`), el('a', { href: '#/' }, 'back to the list'));
    return () => {};
  }
  const state = el('span', { class: 'state', id: 'vm-state' });
  const actions = el('span', { class: 'actions' });
  const confirmBox = el('div');
  const errorBox = el('p', { class: 'error', id: 'action-error' });
  const cpuChart = el('div', { class: 'chart', id: 'chart-cpu' });
  const shareChart = el('div', { class: 'chart', id: 'chart-share' });
  const msgChart = el('div', { class: 'chart', id: 'chart-messages' });
  const counters = el('dl', { class: 'kv', id: 'device-counters' });
  const channels = el('table', { class: 'channels', id: 'device-channels' });
  const files = el('ul', { class: 'log', id: 'file-log' });
  const chatLog = el('ul', { class: 'log', id: 'chat-log' });
  const target = el('select', { id: 'chat-to', 'aria-label': 'send to' });
  const text = el('input', { type: 'text', id: 'chat-text', placeholder: 'message as host', maxlength: '4000' });
  const send = el('button', { type: 'submit', id: 'chat-send' }, 'Send');
  const form = el('form', { class: 'send' }, target, text, send);
  main.replaceChildren(
    el('h1', {}, el('a', { href: '#/' }, '←'), name, state, actions),
    confirmBox,
    errorBox,
    el('div', { class: 'grid' }, el('div', { class: 'card' }, cpuChart), el('div', { class: 'card' }, shareChart), el('div', { class: 'card' }, msgChart)),
    el('div', { class: 'grid' }, el('div', { class: 'card' }, el('h2', {}, 'Device'), counters, channels), el('div', { class: 'card' }, el('h2', {}, 'Files'), files), el('div', { class: 'card' }, el('h2', {}, 'Chat'), chatLog, form)),
  );
  const charts = [lineChart(cpuChart, 'Guest CPU % and demand', ['busy', 'steal', 'demand'], { yMax: 100 }), lineChart(shareChart, 'CPU share and host vCPU %', ['weight', 'vCPU %']), lineChart(msgChart, 'Messages/s, QEMU CPU %', ['messages/s', 'QEMU CPU %'])];

  const ACTIONS = { start: 'Start', stop: 'Stop', kill: 'Kill' };
  function drawActions() {
    const s = store.vms.get(name)?.summary.state;
    state.dataset.state = s ?? 'removed';
    state.textContent = s ?? 'removed';
    actions.replaceChildren(
      ...Object.entries(ACTIONS).map(([action, label]) => {
        const allowed = action === 'start' ? ['defined', 'stopped', 'crashed'].includes(s) : ['running', 'paused', 'starting'].includes(s) || (action === 'kill' && s === 'stopping');
        const b = el('button', { id: `action-${action}`, class: action === 'start' ? '' : 'danger' }, label);
        b.disabled = !allowed;
        b.addEventListener('click', () => ask(action, label));
        return b;
      }),
    );
  }
  function ask(action, label) {
    const yes = el('button', { id: 'confirm-yes', class: 'danger' }, `Yes, ${label.toLowerCase()} ${name}`);
    const no = el('button', { id: 'confirm-no' }, 'Cancel');
    const what = action === 'stop' ? 'ACPI power-off (QEMU is quit after the deadline)' : action === 'kill' ? 'SIGKILL: the guest loses what it did not write' : 'boot it';
    confirmBox.replaceChildren(el('div', { class: 'confirm', id: 'confirm' }, `${label} ${name}? ${what}.`, yes, no));
    no.addEventListener('click', () => confirmBox.replaceChildren());
    yes.addEventListener('click', async () => {
      confirmBox.replaceChildren();
      errorBox.textContent = '';
      try {
        await api.post(`/v1/vms/${encodeURIComponent(name)}/${action}`);
      } catch (err) {
        errorBox.textContent = `${label} failed: ${err.message}`;
      }
    });
  }

  function drawCharts() {
    const v = store.vms.get(name);
    if (!v) return;
    const s = v.stats;
    charts[0].set([s.t, s.cpu, s.steal, s.demand]);
    charts[1].set([s.t, s.weight, s.vcpu]);
    charts[2].set([v.rates.t, v.rates.msgs, v.rates.hostCpu]);
  }

  async function drawCounters() {
    let d;
    try {
      d = await api.get(`/v1/vms/${encodeURIComponent(name)}`);
    } catch {
      return;
    }
    const dev = d.device;
    const rows = dev
      ? [['doorbells', dev.doorbells], ['messages', dev.messages], ['protocol errors', dev.protocolErrors], ['channel resets', dev.channelResets ?? 0], ['device resets', dev.deviceResets ?? 0], ['service failures', dev.serviceFailures ?? 0]]
      : [['device', 'not attached (the VM is not running)']];
    for (const [service, counts] of Object.entries(dev?.services ?? {})) for (const [k, n] of Object.entries(counts)) rows.push([`${service}: ${k.replaceAll('_', ' ')}`, n]);
    counters.replaceChildren(...rows.flatMap(([k, v]) => [el('dt', {}, k), el('dd', {}, String(v))]));
    // Per channel: the ones in a mode now or that saw anything (an unused channel is a row of zeros).
    const used = (dev?.channels ?? []).filter((c) => c.mode !== 'none' || c.messages || c.protocolErrors || c.resets);
    const num = (n) => el('td', { class: 'num' }, String(n));
    channels.replaceChildren(
      ...(used.length ? [el('tr', {}, ...['channel', 'mode', 'messages', 'errors', 'resets'].map((h) => el('th', {}, h)))] : []),
      ...used.map((c) => el('tr', { 'data-channel': String(c.channel), 'data-mode': c.mode }, num(c.channel), el('td', {}, c.mode), num(c.messages), num(c.protocolErrors), num(c.resets))),
    );
    const answers = (dev?.answers ?? []).filter((a) => a.type.startsWith('file_'));
    if (files.dataset.filled !== 'log') {
      files.replaceChildren(...(answers.length ? answers.map((a) => el('li', { class: 'meta' }, `${a.type.replace('file_', '')} ${a.status}: ${a.count}`)) : [el('li', { class: 'meta' }, 'no copies or file requests yet')]));
    }
  }

  function drawChat() {
    const v = store.vms.get(name);
    chatLog.replaceChildren(...(v?.chat ?? []).map((m) => el('li', { class: m.out ? 'out' : m.meta ? 'meta' : '' }, `${time(m.at)} ${m.line}`)));
    chatLog.scrollTop = chatLog.scrollHeight;
  }

  function drawFiles() {
    const v = store.vms.get(name);
    if (!v?.files.length) return;
    files.dataset.filled = 'log';
    files.replaceChildren(...v.files.map((f) => el('li', {}, `${time(f.at)} ${f.line}`)));
  }

  async function drawPeers() {
    let peers = [];
    try {
      peers = (await api.get('/v1/chat/peers')).peers.filter((p) => p.vm === name);
    } catch {
      // shown as none
    }
    const chosen = target.value;
    target.replaceChildren(...peers.map((p) => el('option', { value: p.name }, p.name)));
    if (peers.some((p) => p.name === chosen)) target.value = chosen;
    send.disabled = peers.length === 0;
    text.placeholder = peers.length ? `message as host to ${name}` : `no chat names registered in ${name}`;
  }

  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const to = target.value;
    const message = text.value;
    if (!to || !message) return;
    try {
      const r = await api.post('/v1/chat/send', { to, text: message });
      store.log(name, 'chat', { out: true, line: `host -> ${to}: ${message} (${r.delivered ? 'delivered' : 'not delivered'})` });
      text.value = '';
    } catch (err) {
      store.log(name, 'chat', { meta: true, line: `host -> ${to}: refused: ${err.message}` });
    }
  });

  drawActions();
  drawCharts();
  drawChat();
  drawFiles();
  void drawCounters();
  void drawPeers();
  const timer = setInterval(() => void drawCounters(), 2000);
  const off = store.onChange((what) => {
    if (what.kind === 'list') drawActions();
    if (what.kind === 'stats' || what.kind === 'figures') drawCharts();
    if (what.kind === 'chat' && what.vm === name) drawChat();
    if (what.kind === 'files' && what.vm === name) drawFiles();
    if (what.kind === 'presence') void drawPeers();
  });
  return () => {
    off();
    clearInterval(timer);
    for (const c of charts) c.destroy();
  };
}
