// `castellan jobs | head`: once the reader closes the pipe, writes to stdout fail with EPIPE.
// Node raises that as an unhandled 'error' event with a stack trace; a CLI should simply stop,
// as `ls | head` does. The reader took what it wanted, so this is not a failure (exit 0), and
// a job already submitted keeps running on the worker.

function closedPipe(error: NodeJS.ErrnoException): boolean {
  // EIO: the terminal went away (a hung-up `castellan up` still stops its children cleanly).
  return error.code === 'EPIPE' || error.code === 'ERR_STREAM_DESTROYED' || error.code === 'EIO';
}

export function quietOnClosedPipe(): void {
  process.stdout.on('error', (error: NodeJS.ErrnoException) => {
    if (closedPipe(error)) process.exit(0);
    throw error;
  });
  // Nowhere left to report a broken stderr: carry on with stdout and the exit code.
  process.stderr.on('error', (error: NodeJS.ErrnoException) => {
    if (!closedPipe(error)) throw error;
  });
}
