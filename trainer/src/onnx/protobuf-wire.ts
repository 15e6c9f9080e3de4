/**
 * Protocol-buffers wire format: just enough to read and write ONNX models
 * without a protobuf dependency. A message is a flat list of fields; nested
 * messages stay as bytes until someone decodes them.
 */

/** 0 = varint, 1 = fixed64, 2 = length-delimited, 5 = fixed32 (groups are not used by ONNX). */
export type WireType = 0 | 1 | 2 | 5;

export type ProtoField = { no: number; wire: 0; value: bigint } | { no: number; wire: 1 | 2 | 5; value: Uint8Array };

const textDecoder = new TextDecoder();
const textEncoder = new TextEncoder();

export function readVarint(buf: Uint8Array, pos: number): [bigint, number] {
  // Fast path in plain numbers for the common < 2^28 case; bigint for the rest.
  let result = 0;
  let shift = 0;
  while (shift < 28) {
    if (pos >= buf.length) throw new Error('protobuf: truncated varint');
    const b = buf[pos++];
    result |= (b & 0x7f) << shift;
    if ((b & 0x80) === 0) return [BigInt(result >>> 0), pos];
    shift += 7;
  }
  let big = BigInt(result >>> 0);
  let bigShift = 28n;
  for (;;) {
    if (pos >= buf.length) throw new Error('protobuf: truncated varint');
    const b = buf[pos++];
    big |= BigInt(b & 0x7f) << bigShift;
    if ((b & 0x80) === 0) return [BigInt.asUintN(64, big), pos];
    bigShift += 7n;
    if (bigShift > 63n) throw new Error('protobuf: varint too long');
  }
}

export function writeVarint(out: number[], value: bigint | number): void {
  let v = BigInt.asUintN(64, BigInt(value));
  while (v >= 0x80n) {
    out.push(Number(v & 0x7fn) | 0x80);
    v >>= 7n;
  }
  out.push(Number(v));
}

/** Splits one message into its fields (length-delimited values are views, not copies). */
export function decodeMessage(buf: Uint8Array): ProtoField[] {
  const fields: ProtoField[] = [];
  let pos = 0;
  while (pos < buf.length) {
    const [key, p1] = readVarint(buf, pos);
    pos = p1;
    const no = Number(key >> 3n);
    const wire = Number(key & 7n);
    if (no === 0) throw new Error('protobuf: field number 0');
    if (wire === 0) {
      const [v, p2] = readVarint(buf, pos);
      pos = p2;
      fields.push({ no, wire: 0, value: v });
    } else if (wire === 2) {
      const [len, p2] = readVarint(buf, pos);
      const end = p2 + Number(len);
      if (end > buf.length) throw new Error(`protobuf: field ${no} overruns the buffer`);
      fields.push({ no, wire: 2, value: buf.subarray(p2, end) });
      pos = end;
    } else if (wire === 1 || wire === 5) {
      const size = wire === 1 ? 8 : 4;
      if (pos + size > buf.length) throw new Error(`protobuf: field ${no} overruns the buffer`);
      fields.push({ no, wire, value: buf.subarray(pos, pos + size) });
      pos += size;
    } else {
      throw new Error(`protobuf: unsupported wire type ${wire} (field ${no})`);
    }
  }
  return fields;
}

/** Serialises fields in the given order. Varints are written minimally, so decode → encode is byte-exact for canonical input. */
export function encodeMessage(fields: readonly ProtoField[]): Uint8Array {
  const chunks: Uint8Array[] = [];
  let header: number[] = [];
  let total = 0;
  const flushHeader = (): void => {
    if (header.length === 0) return;
    const h = Uint8Array.from(header);
    chunks.push(h);
    total += h.length;
    header = [];
  };
  for (const f of fields) {
    writeVarint(header, (BigInt(f.no) << 3n) | BigInt(f.wire));
    if (f.wire === 0) {
      writeVarint(header, f.value);
    } else {
      if (f.wire === 2) writeVarint(header, f.value.length);
      flushHeader();
      chunks.push(f.value);
      total += f.value.length;
    }
  }
  flushHeader();
  const out = new Uint8Array(total);
  let off = 0;
  for (const c of chunks) {
    out.set(c, off);
    off += c.length;
  }
  return out;
}

// ---- field builders -------------------------------------------------------

export function varintField(no: number, value: bigint | number): ProtoField {
  return { no, wire: 0, value: BigInt.asUintN(64, BigInt(value)) };
}

export function bytesField(no: number, value: Uint8Array): ProtoField {
  return { no, wire: 2, value };
}

export function stringField(no: number, value: string): ProtoField {
  return { no, wire: 2, value: textEncoder.encode(value) };
}

export function messageField(no: number, fields: readonly ProtoField[]): ProtoField {
  return { no, wire: 2, value: encodeMessage(fields) };
}

export function float32Field(no: number, value: number): ProtoField {
  const b = new Uint8Array(4);
  new DataView(b.buffer).setFloat32(0, value, true);
  return { no, wire: 5, value: b };
}

/** Packed repeated float (wire type 2), as ONNX uses for float_data / floats. */
export function packedFloat32Field(no: number, values: ArrayLike<number>): ProtoField {
  const b = new Uint8Array(values.length * 4);
  const dv = new DataView(b.buffer);
  for (let i = 0; i < values.length; i++) dv.setFloat32(i * 4, values[i], true);
  return { no, wire: 2, value: b };
}

// ---- field readers --------------------------------------------------------

export function decodeString(b: Uint8Array): string {
  return textDecoder.decode(b);
}

/** Signed 64-bit interpretation of a varint (ONNX int64 fields), as a JS number. */
export function toInt64(v: bigint): number {
  return Number(BigInt.asIntN(64, v));
}

/** Values of a repeated varint field, accepting both packed and unpacked encodings. */
export function repeatedVarints(fields: readonly ProtoField[], no: number): bigint[] {
  const out: bigint[] = [];
  for (const f of fields) {
    if (f.no !== no) continue;
    if (f.wire === 0) out.push(f.value);
    else if (f.wire === 2) {
      let pos = 0;
      while (pos < f.value.length) {
        const [v, p] = readVarint(f.value, pos);
        out.push(v);
        pos = p;
      }
    }
  }
  return out;
}

/** Values of a repeated float field, packed or not. */
export function repeatedFloat32(fields: readonly ProtoField[], no: number): number[] {
  const out: number[] = [];
  for (const f of fields) {
    if (f.no !== no || f.wire === 0 || f.wire === 1) continue;
    const dv = new DataView(f.value.buffer, f.value.byteOffset, f.value.byteLength);
    for (let i = 0; i + 4 <= f.value.length; i += 4) out.push(dv.getFloat32(i, true));
  }
  return out;
}

/** All length-delimited values of field `no`, as strings. */
export function repeatedStrings(fields: readonly ProtoField[], no: number): string[] {
  const out: string[] = [];
  for (const f of fields) if (f.no === no && f.wire === 2) out.push(decodeString(f.value));
  return out;
}

/** All length-delimited values of field `no`, as bytes (nested messages). */
export function repeatedBytes(fields: readonly ProtoField[], no: number): Uint8Array[] {
  const out: Uint8Array[] = [];
  for (const f of fields) if (f.no === no && f.wire === 2) out.push(f.value);
  return out;
}

/** Last occurrence wins, as in protobuf semantics for singular fields. */
export function lastField(fields: readonly ProtoField[], no: number): ProtoField | undefined {
  for (let i = fields.length - 1; i >= 0; i--) if (fields[i].no === no) return fields[i];
  return undefined;
}

export function stringOf(fields: readonly ProtoField[], no: number): string {
  const f = lastField(fields, no);
  return f && f.wire === 2 ? decodeString(f.value) : '';
}

export function varintOf(fields: readonly ProtoField[], no: number): bigint | undefined {
  const f = lastField(fields, no);
  return f && f.wire === 0 ? f.value : undefined;
}
