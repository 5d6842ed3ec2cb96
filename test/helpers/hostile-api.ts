/**
 * A hostile Keystone + Manila for issue 14 (finding 3): Keystone first
 * answers 500 echoing the password it was sent, then issues a
 * real-looking token; every Manila resource answers 500 with a body that
 * echoes the request (headers, token, the URL-encoded token) and headers
 * that echo the token. Run as a program inside a namespace:
 *   node hostile-api.js PORT TOKEN PROJECT
 * It prints `listening PORT` once it accepts connections.
 */
import * as http from 'node:http';

export function hostileApi(port: number, token: string, project: string): Promise<http.Server> {
  let tokenRequests = 0;
  const server = http.createServer((req, res) => {
    let body = '';
    req.on('data', (c: Buffer) => {
      if (body.length < 65536) {
        body += c.toString();
      }
    });
    req.on('end', () => {
      const url = new URL(req.url ?? '/', 'http://x');
      const base = `http://127.0.0.1:${port}`;
      if (url.pathname === '/v3/auth/tokens' && tokenRequests++ === 0) {
        let pw = '';
        try {
          pw = String((JSON.parse(body) as { auth: { identity: { password: { user: { password: string } } } } }).auth.identity.password.user.password);
        } catch {
          // Not the body we expected: echo it whole below.
        }
        res.writeHead(500, { 'Content-Type': 'text/plain', 'X-Openstack-Request-Id': `req-${pw}` });
        res.end(`password ${pw} rejected (${encodeURIComponent(pw)}); request was: ${body}`);
        return;
      }
      if (url.pathname === '/v3/auth/tokens') {
        // The password comes back in the body too, as a careless server would.
        res.writeHead(201, { 'Content-Type': 'application/json', 'X-Subject-Token': token });
        res.end(
          JSON.stringify({
            token: {
              expires_at: new Date(Date.now() + 3600_000).toISOString(),
              project: { id: project },
              catalog: [{ type: 'sharev2', endpoints: [{ interface: 'public', url: `${base}/v2/${project}` }] }],
              echo: body,
            },
          }),
        );
        return;
      }
      if (url.pathname === '/v2/' || url.pathname === '/v2') {
        res.writeHead(200, { 'Content-Type': 'application/json' });
        res.end(JSON.stringify({ versions: [{ id: 'v2.0', status: 'CURRENT', version: '2.73', min_version: '2.0' }] }));
        return;
      }
      const tok = String(req.headers['x-auth-token'] ?? '');
      res.writeHead(500, { 'Content-Type': 'text/plain', 'X-Openstack-Request-Id': `req-${tok}`, 'X-Echo': tok });
      res.end(`X-Auth-Token: ${tok} in ${req.method} ${req.url}\nquoted: ${JSON.stringify({ token: tok, headers: req.headers })}\nform: token=${encodeURIComponent(tok)}\n`);
    });
  });
  return new Promise((resolve) => server.listen(port, '127.0.0.1', () => resolve(server)));
}

if (require.main === module) {
  const [port, token, project] = process.argv.slice(2);
  void hostileApi(Number(port), token ?? '', project ?? '').then(() => process.stdout.write(`listening ${port}\n`));
}
