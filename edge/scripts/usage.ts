/** `--help` for the edge's scripts and benchmarks: print usage and exit 0 before doing any work. */
export function answerHelp(meta: ImportMeta, usage: string): void {
  // Only the script that was run answers: a module it imports (with its own usage) stays quiet.
  if (!meta.main) return;
  const args = process.argv.slice(2);
  if (args.includes('--help') || args.includes('-h')) {
    process.stdout.write(`${usage.trim()}\n`);
    process.exit(0);
  }
}
