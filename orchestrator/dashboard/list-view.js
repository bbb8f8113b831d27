// The VM list: state, and sparklines of guest CPU, steal, declared demand, the scheduler's share and
// device messages/s.
import { sparkline } from './spark.js';

const LAST = 60;

export function renderList(main, store) {
  const table = document.createElement('table');
  table.id = 'vm-list';
  table.innerHTML = '<thead><tr><th>VM</th><th>state</th><th>guest CPU %</th><th>steal %</th><th>demand</th><th>share</th><th>messages/s</th><th>RSS</th></tr></thead>';
  const body = document.createElement('tbody');
  table.append(body);
  const title = document.createElement('h1');
  title.textContent = 'Virtual machines';
  main.replaceChildren(title, table);

  function draw() {
    body.replaceChildren();
    if (store.vms.size === 0) {
      const tr = body.insertRow();
      tr.insertCell().textContent = 'No VMs yet: vmgmt vm create -f FILE';
      return;
    }
    for (const [name, vm] of store.vms) {
      const tr = body.insertRow();
      tr.dataset.vm = name;
      const link = document.createElement('a');
      link.href = `#/vm/${encodeURIComponent(name)}`;
      link.textContent = name;
      tr.insertCell().append(link);
      const state = document.createElement('span');
      state.className = 'state';
      state.dataset.state = vm.summary.state;
      state.textContent = vm.summary.state;
      tr.insertCell().append(state);
      const s = vm.stats;
      tr.insertCell().append(sparkline('', s.cpu.slice(-LAST), { max: 100 }));
      tr.insertCell().append(sparkline('', s.steal.slice(-LAST), { max: 100 }));
      tr.insertCell().append(sparkline('', s.demand.slice(-LAST), { max: 100 }));
      tr.insertCell().append(sparkline('', s.weight.slice(-LAST)));
      tr.insertCell().append(sparkline('', vm.rates.msgs.slice(-LAST)));
      const rss = vm.figures?.process?.rssBytes;
      const cell = tr.insertCell();
      cell.className = 'num';
      cell.textContent = rss === undefined ? '-' : `${(rss / 1048576).toFixed(0)} MiB`;
    }
  }
  draw();
  return store.onChange((what) => {
    if (what.kind === 'list' || what.kind === 'stats' || what.kind === 'figures') draw();
  });
}
