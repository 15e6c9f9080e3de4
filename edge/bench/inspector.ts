/**
 * A minimal Chrome DevTools Protocol client over a raw WebSocket, for reading
 * a workerd isolate's heap through `wrangler dev --inspector-port`. Node's
 * built-in WebSocket cannot set the Origin header that wrangler's inspector
 * proxy checks, so the handshake and framing are done by hand (text frames only).
 */
import { randomBytes } from 'node:crypto';
import { connect, type Socket } from 'node:net';

export class Inspector {
  private socket!: Socket;
  private buf = Buffer.alloc(0);
  private nextId = 1;
  private readonly pending = new Map<number, (v: unknown) => void>();

  static async open(
    port: number,
    path = '/ws',
    origin = 'https://devtools.devprod.cloudflare.dev',
  ): Promise<Inspector> {
    const c = new Inspector();
    await new Promise<void>((resolve, reject) => {
      const s = connect(port, '127.0.0.1', () => {
        const key = randomBytes(16).toString('base64');
        s.write(
          [
            `GET ${path} HTTP/1.1`,
            `Host: 127.0.0.1:${port}`,
            'Upgrade: websocket',
            'Connection: Upgrade',
            `Sec-WebSocket-Key: ${key}`,
            'Sec-WebSocket-Version: 13',
            `Origin: ${origin}`,
            '',
            '',
          ].join('\r\n'),
        );
      });
      c.socket = s;
      let upgraded = false;
      s.on('data', (d: Buffer) => {
        c.buf = Buffer.concat([c.buf, d]);
        if (!upgraded) {
          const end = c.buf.indexOf('\r\n\r\n');
          if (end < 0) return;
          const head = c.buf.subarray(0, end).toString();
          if (!/^HTTP\/1\.1 101/.test(head))
            return reject(new Error(`inspector refused the connection: ${head.split('\r\n')[0]}`));
          upgraded = true;
          c.buf = c.buf.subarray(end + 4);
          resolve();
        }
        c.drain();
      });
      s.on('error', reject);
    });
    return c;
  }

  private drain(): void {
    for (;;) {
      if (this.buf.length < 2) return;
      let len = this.buf[1] & 0x7f;
      let off = 2;
      if (len === 126) {
        if (this.buf.length < 4) return;
        len = this.buf.readUInt16BE(2);
        off = 4;
      } else if (len === 127) {
        if (this.buf.length < 10) return;
        len = Number(this.buf.readBigUInt64BE(2));
        off = 10;
      }
      if (this.buf.length < off + len) return;
      const payload = this.buf.subarray(off, off + len).toString();
      this.buf = this.buf.subarray(off + len);
      try {
        const msg = JSON.parse(payload) as { id?: number; result?: unknown; error?: { message: string } };
        if (msg.id !== undefined) this.pending.get(msg.id)?.(msg.error ? new Error(msg.error.message) : msg.result);
      } catch {
        // not a JSON reply (events are ignored)
      }
    }
  }

  send<T>(method: string, params: object = {}): Promise<T> {
    const id = this.nextId++;
    const data = Buffer.from(JSON.stringify({ id, method, params }));
    const mask = randomBytes(4);
    const head =
      data.length < 126
        ? Buffer.from([0x81, 0x80 | data.length])
        : Buffer.from([0x81, 0x80 | 126, data.length >> 8, data.length & 0xff]);
    const masked = Buffer.from(data.map((b, i) => b ^ mask[i % 4]));
    this.socket.write(Buffer.concat([head, mask, masked]));
    return new Promise<T>((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`inspector: no reply to ${method}`)), 15_000);
      this.pending.set(id, (v) => {
        clearTimeout(t);
        if (v instanceof Error) reject(v);
        else resolve(v as T);
      });
    });
  }

  close(): void {
    this.socket.destroy();
  }
}
