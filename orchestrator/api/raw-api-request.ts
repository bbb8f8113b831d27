// One request to the control API over its UNIX socket, as it is: JSON in, the status and the body out (JSON
// when the answer says so), no contract checks. For tests and benchmarks that look at the API from outside;
// the CLI uses api-client.ts, which checks every answer against the contract.
import http from 'node:http';

export interface RawApiAnswer<T = any> {
  status: number;
  body: T;
}

export function rawApiRequest<T = any>(socketPath: string, method: string, urlPath: string, body?: unknown, timeoutMs = 120_000): Promise<RawApiAnswer<T>> {
  return new Promise((resolve, reject) => {
    const payload = body === undefined ? undefined : JSON.stringify(body);
    const req = http.request(
      { socketPath, method, path: urlPath, headers: payload ? { 'content-type': 'application/json', 'content-length': Buffer.byteLength(payload) } : {}, timeout: timeoutMs },
      (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => (text += c));
        res.on('end', () => {
          const isJson = (res.headers['content-type'] ?? '').includes('json');
          try {
            resolve({ status: res.statusCode ?? 0, body: (isJson && text ? JSON.parse(text) : text) as T });
          } catch (err) {
            reject(err as Error);
          }
        });
      },
    );
    req.on('timeout', () => req.destroy(new Error(`${method} ${urlPath} timed out after ${timeoutMs} ms`)));
    req.on('error', reject);
    if (payload) req.write(payload);
    req.end();
  });
}
