/** The errno code (`ENOENT`, `ENOSPC`, ...) of a Node error, or null. */
export function errnoOf(err: unknown): string | null {
  const code = (err as NodeJS.ErrnoException | null)?.code;
  return typeof code === 'string' ? code : null;
}
