import { readFile } from 'node:fs/promises';
import { basename } from 'node:path';
import { DatasetError } from './errors.ts';

/** One non-blank line of a CUB-style whitespace-separated text file. */
export interface TableRow {
  /** 1-based line number in the file. */
  line: number;
  fields: string[];
}

/**
 * Read a whitespace-separated metadata file (CUB's images.txt etc.). Blank lines are
 * ignored; every other line must have `columns` fields, except that with
 * `restJoined` the last column takes the rest of the line (file paths with spaces).
 */
export async function readTable(path: string, columns: number, restJoined = false): Promise<TableRow[]> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch {
    throw new DatasetError('metadata file is missing or unreadable', {
      file: path,
      fix: `restore ${basename(path)} from the original dataset archive`,
    });
  }
  const rows: TableRow[] = [];
  text.split(/\r?\n/).forEach((raw, i) => {
    const trimmed = raw.trim();
    if (trimmed === '') return;
    let fields = trimmed.split(/\s+/);
    if (restJoined && fields.length > columns) {
      fields = [...fields.slice(0, columns - 1), fields.slice(columns - 1).join(' ')];
    }
    if (fields.length !== columns) {
      throw new DatasetError(`expected ${columns} fields, found ${fields.length}: "${trimmed}"`, {
        file: path,
        line: i + 1,
        fix: 'correct or delete the malformed line',
      });
    }
    rows.push({ line: i + 1, fields });
  });
  return rows;
}

/** A positive integer id field, or a DatasetError pointing at its line. */
export function parseId(path: string, row: TableRow, column: number, what: string): number {
  const s = row.fields[column];
  if (!/^\d+$/.test(s) || Number(s) < 1) {
    throw new DatasetError(`${what} "${s}" is not a positive integer`, {
      file: path,
      line: row.line,
      fix: 'correct the line',
    });
  }
  return Number(s);
}

/** A finite number field, or a DatasetError pointing at its line. */
export function parseNumber(path: string, row: TableRow, column: number, what: string): number {
  const v = Number(row.fields[column]);
  if (!Number.isFinite(v)) {
    throw new DatasetError(`${what} "${row.fields[column]}" is not a number`, {
      file: path,
      line: row.line,
      fix: 'correct the line',
    });
  }
  return v;
}

/** Index rows by their integer id in column 0; a repeated id is an error. */
export function indexById(path: string, rows: TableRow[], what: string): Map<number, TableRow> {
  const out = new Map<number, TableRow>();
  for (const row of rows) {
    const id = parseId(path, row, 0, what);
    const prev = out.get(id);
    if (prev) {
      throw new DatasetError(`${what} ${id} repeats line ${prev.line}`, {
        file: path,
        line: row.line,
        fix: 'delete the duplicate line',
      });
    }
    out.set(id, row);
  }
  return out;
}
