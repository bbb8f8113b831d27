// The dashboard's files, read once when the listener starts: orchestrator/dashboard/ (plain ES modules and
// CSS, no build step) and uPlot from node_modules, all served by the daemon (no CDN). Only these paths exist.
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { findRepoRoot } from '../vm/repo-root.js';

export interface Asset {
  contentType: string;
  body: Buffer;
}

const TYPES: Readonly<Record<string, string>> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
};

export class DashboardAssets {
  private constructor(private readonly files: ReadonlyMap<string, Asset>) {}

  static load(root = findRepoRoot()): DashboardAssets {
    const files = new Map<string, Asset>();
    const dir = path.join(root, 'orchestrator', 'dashboard');
    for (const name of readdirSync(dir)) {
      const type = TYPES[path.extname(name)];
      if (type === undefined) continue;
      files.set(`/assets/${name}`, { contentType: type, body: readFileSync(path.join(dir, name)) });
    }
    const uplot = path.join(root, 'node_modules', 'uplot', 'dist');
    files.set('/assets/uplot/uPlot.iife.min.js', { contentType: TYPES['.js']!, body: readFileSync(path.join(uplot, 'uPlot.iife.min.js')) });
    files.set('/assets/uplot/uPlot.min.css', { contentType: TYPES['.css']!, body: readFileSync(path.join(uplot, 'uPlot.min.css')) });
    const index = files.get('/assets/index.html');
    if (!index) throw new Error(`the dashboard's index.html is missing from ${dir}`);
    files.set('/', index);
    files.set('/index.html', index);
    return new DashboardAssets(files);
  }

  get(urlPath: string): Asset | undefined {
    return this.files.get(urlPath);
  }
}
