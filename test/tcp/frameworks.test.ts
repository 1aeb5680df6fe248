/**
 * Applications written for Node's own http server run on keepnet unchanged: node:http, express and
 * fastify, each served through `stack.net` and called through `stack.net` (over the stack's loopback),
 * exactly as the README shows.
 */
import t from 'tap';
import http from 'node:http';
import type { Socket } from 'node:net';
import express from 'express';
import fastify from 'fastify';
import { Stack } from '../../kernel-shim/stack.js';

const stack = new Stack({ address: '10.92.0.1/24' });
t.before(() => stack.start());
t.teardown(() => stack.close());

/** Serve an http.Server's requests from connections accepted by keepnet on `port`. */
function serve(server: http.Server, port: number): Promise<void> {
  return new Promise((resolve) => {
    const listener = stack.net.createServer((socket) => server.emit('connection', socket));
    listener.listen(port, () => resolve());
    t.teardown(() => new Promise<void>((r) => listener.close(() => r())));
  });
}

function request(port: number, path: string, method = 'GET', body?: string): Promise<{ status: number; type: string; text: string }> {
  return new Promise((resolve, reject) => {
    const req = http.request(
      { host: '127.0.0.1', port, path, method, headers: body ? { 'content-type': 'application/json' } : {}, createConnection: () => stack.net.connect(port, '127.0.0.1') as unknown as Socket },
      (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (d: string) => (text += d));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, type: String(res.headers['content-type'] ?? ''), text }));
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

t.test('express', async (t) => {
  const app = express();
  app.use(express.json());
  app.get('/hello/:name', (req, res) => {
    res.json({ hello: req.params.name, remote: req.socket.remoteAddress });
  });
  app.post('/sum', (req, res) => {
    res.json({ sum: (req.body as number[]).reduce((a, b) => a + b, 0) });
  });
  await serve(http.createServer(app), 8080);
  const r = await request(8080, '/hello/keepnet');
  t.equal(r.status, 200);
  t.match(r.type, /application\/json/);
  t.same(JSON.parse(r.text), { hello: 'keepnet', remote: '127.0.0.1' });
  const s = await request(8080, '/sum', 'POST', JSON.stringify([1, 2, 3, 4]));
  t.same(JSON.parse(s.text), { sum: 10 });
  t.equal((await request(8080, '/missing')).status, 404);
});

t.test('fastify', async (t) => {
  let server: http.Server | null = null;
  const app = fastify({
    serverFactory: (handler) => {
      server = http.createServer(handler);
      return server;
    },
  });
  app.get('/hello/:name', async (req) => ({ hello: (req.params as { name: string }).name }));
  app.post('/echo', async (req) => ({ got: req.body }));
  await app.ready();
  await serve(server!, 8081);
  const r = await request(8081, '/hello/fastify');
  t.equal(r.status, 200);
  t.same(JSON.parse(r.text), { hello: 'fastify' });
  const e = await request(8081, '/echo', 'POST', JSON.stringify({ a: [1, 'two'] }));
  t.same(JSON.parse(e.text), { got: { a: [1, 'two'] } });
  await app.close();
});
