/**
 * A dataset on disk that cannot be loaded as laid out. The message names the
 * offending file (and 1-based line, when a line is at fault) and says how to fix it,
 * because the person reading it is usually pointing the trainer at their own copy.
 */
export class DatasetError extends Error {
  readonly file: string | undefined;
  readonly line: number | undefined;

  constructor(problem: string, opts: { file?: string; line?: number; fix?: string } = {}) {
    const where = opts.file === undefined ? '' : `${opts.file}${opts.line === undefined ? '' : `:${opts.line}`}: `;
    super(`${where}${problem}${opts.fix ? `. Fix: ${opts.fix}` : ''}`);
    this.name = 'DatasetError';
    this.file = opts.file;
    this.line = opts.line;
  }
}

/** One image that could not be decoded (empty, truncated, not an image...). */
export class ImageDecodeError extends Error {
  readonly path: string;
  readonly reason: string;

  constructor(path: string, reason: string) {
    super(`cannot decode image ${path}: ${reason}`);
    this.name = 'ImageDecodeError';
    this.path = path;
    this.reason = reason;
  }
}
