import { randomBytes } from 'node:crypto';
import { constants } from 'node:fs';
import { lstat, mkdir, open, readdir, readFile, readlink, rename, rm, symlink, unlink, writeFile } from 'node:fs/promises';
import { basename, dirname, join, relative, resolve } from 'node:path';
import { ChainError, errorMessage } from '../errors';
import type { ObjectStore, StoredObject } from '../ports';

/** Folder under the root that holds every object's versions; not an object name. */
const VERSIONS = '.generations';
/** Generation of a plain file put in the folder by hand (such as a carried-over watermark). */
const PLAIN_FILE_GENERATION = '0';
const READ_TRIES = 20;

/** Per absolute object path: the tail of its queue of replace/delete operations in this process. */
const locks = new Map<string, Promise<void>>();

/**
 * The state bucket of the local stack: a folder. Each version of an object is an immutable file
 * `<root>/.generations/<path>/<generation>`, and the object itself is a symbolic link
 * `<root>/<path>` to its current version, so that:
 *
 * - a reader gets data and generation that belong together (the link names the version it
 *   reads; a version is never modified), and never sees partial content (a version is complete
 *   before any link points to it);
 * - create-only is atomic across async callers and across processes (`symlink` fails if the
 *   name exists);
 * - a replace swaps the link atomically (`rename` of a new link over the old one), after checking
 *   the generation under an in-process lock per object, so of two concurrent replacers with the
 *   same generation exactly one wins.
 *
 * Cross-process limit: the lock is per process, so two processes replacing (or deleting) the same
 * object at the same instant could both succeed. The local stack runs in one process (DuckDB
 * allows one process per file), so the chain never does that; reads and creates are safe across
 * processes. A plain file placed in the folder by hand is an object of generation '0'.
 */
export class FolderObjectStore implements ObjectStore {
  /** Absolute path of the folder. */
  readonly root: string;

  constructor(root: string) {
    this.root = resolve(root);
  }

  async read(path: string): Promise<StoredObject | null> {
    const file = this.file(path);
    for (let attempt = 0; attempt < READ_TRIES; attempt++) {
      let target: string;
      try {
        target = await readlink(file);
      } catch (error) {
        if (code(error) === 'ENOENT') return null;
        if (code(error) === 'EINVAL') {
          const plain = await readPlainFile(file);
          if (plain !== undefined) return { data: plain, generation: PLAIN_FILE_GENERATION };
          continue; // it became a link meanwhile
        }
        throw storeError('read', path, error);
      }
      try {
        return { data: await readFile(resolve(dirname(file), target), 'utf8'), generation: basename(target) };
      } catch (error) {
        if (code(error) !== 'ENOENT') throw storeError('read', path, error);
        // Replaced or deleted between the two reads: look at the link again.
      }
    }
    throw new ChainError(`Reading ${path} from the state folder failed: it kept changing during ${READ_TRIES} attempts`, { path, root: this.root });
  }

  async create(path: string, data: string): Promise<boolean> {
    const file = this.file(path);
    const version = await this.writeVersion(path, data);
    try {
      await mkdir(dirname(file), { recursive: true });
      await symlink(relative(dirname(file), version), file);
      return true;
    } catch (error) {
      await rm(version, { force: true });
      if (code(error) === 'EEXIST') return false;
      throw storeError('create', path, error);
    }
  }

  async replace(path: string, data: string, generation: string): Promise<boolean> {
    const file = this.file(path);
    return withLock(file, async () => {
      const current = await currentVersion(file);
      if (!current || current.generation !== generation) return false;
      const version = await this.writeVersion(path, data);
      const link = join(dirname(version), `.link-${basename(version)}`);
      try {
        // The link's target is relative to where the link ends up, beside the object's name.
        await symlink(relative(dirname(file), version), link);
        await rename(link, file);
      } catch (error) {
        await Promise.all([rm(link, { force: true }), rm(version, { force: true })]);
        throw storeError('replace', path, error);
      }
      if (current.versionFile) await rm(current.versionFile, { force: true });
      return true;
    });
  }

  async exists(path: string): Promise<boolean> {
    try {
      await lstat(this.file(path));
      return true;
    } catch (error) {
      if (code(error) === 'ENOENT' || code(error) === 'ENOTDIR') return false;
      throw storeError('check', path, error);
    }
  }

  async list(prefix: string): Promise<string[]> {
    if (prefix !== '') checkPath(prefix.endsWith('/') ? prefix.slice(0, -1) : prefix);
    const start = prefix.includes('/') ? prefix.slice(0, prefix.lastIndexOf('/')) : '';
    const found: string[] = [];
    const walk = async (relativeDir: string): Promise<void> => {
      let entries;
      try {
        entries = await readdir(join(this.root, relativeDir), { withFileTypes: true });
      } catch (error) {
        if (code(error) === 'ENOENT' || code(error) === 'ENOTDIR') return;
        throw storeError('list', prefix, error);
      }
      for (const entry of entries) {
        const name = relativeDir ? `${relativeDir}/${entry.name}` : entry.name;
        if (name === VERSIONS) continue;
        if (entry.isDirectory()) {
          if (`${name}/`.startsWith(prefix) || prefix.startsWith(`${name}/`)) await walk(name);
        } else if ((entry.isSymbolicLink() || entry.isFile()) && name.startsWith(prefix)) {
          found.push(name);
        }
      }
    };
    await walk(start);
    return found.sort();
  }

  async delete(path: string): Promise<void> {
    const file = this.file(path);
    await withLock(file, async () => {
      const current = await currentVersion(file);
      try {
        await unlink(file);
      } catch (error) {
        if (code(error) !== 'ENOENT') throw storeError('delete', path, error);
      }
      if (current?.versionFile) await rm(current.versionFile, { force: true });
    });
  }

  uri(path: string): string {
    return this.file(path);
  }

  private file(path: string): string {
    return join(this.root, checkPath(path));
  }

  /** Writes a new, complete version file of the object and returns its path. */
  private async writeVersion(path: string, data: string): Promise<string> {
    const directory = join(this.root, VERSIONS, path);
    const version = join(directory, newGeneration());
    try {
      await mkdir(directory, { recursive: true });
      await writeFile(version, data, { flag: 'wx' });
      return version;
    } catch (error) {
      throw storeError('write', path, error);
    }
  }
}

/** Unique, never reused: time plus 48 random bits. */
function newGeneration(): string {
  return `${Date.now()}${randomBytes(6).toString('hex')}`;
}

/** An object path is relative, with no empty, '.' or '..' segments, and not inside the versions folder. */
function checkPath(path: string): string {
  const segments = path.split('/');
  if (path === '' || path.includes('\\') || path.includes('\0') || segments.some((s) => s === '' || s === '.' || s === '..') || segments[0] === VERSIONS) {
    throw new ChainError(`"${path}" is not a valid object path (relative, '/'-separated, no empty, '.' or '..' parts, not under ${VERSIONS}/)`, { path });
  }
  return path;
}

async function currentVersion(file: string): Promise<{ generation: string; versionFile?: string } | null> {
  try {
    const target = await readlink(file);
    return { generation: basename(target), versionFile: resolve(dirname(file), target) };
  } catch (error) {
    if (code(error) === 'ENOENT') return null;
    if (code(error) === 'EINVAL') return { generation: PLAIN_FILE_GENERATION };
    throw error;
  }
}

/** The content of a regular file, or undefined if it is (now) a link. */
async function readPlainFile(file: string): Promise<string | undefined> {
  try {
    const handle = await open(file, constants.O_RDONLY | constants.O_NOFOLLOW);
    try {
      return await handle.readFile('utf8');
    } finally {
      await handle.close();
    }
  } catch (error) {
    if (code(error) === 'ELOOP' || code(error) === 'ENOENT') return undefined;
    throw error;
  }
}

/** Runs `work` after every earlier operation queued on the same key in this process. */
async function withLock<T>(key: string, work: () => Promise<T>): Promise<T> {
  const previous = locks.get(key) ?? Promise.resolve();
  const result = previous.then(work);
  const tail = result.then(
    () => undefined,
    () => undefined,
  );
  locks.set(key, tail);
  void tail.then(() => {
    if (locks.get(key) === tail) locks.delete(key);
  });
  return result;
}

function code(error: unknown): string | undefined {
  return (error as NodeJS.ErrnoException | undefined)?.code;
}

function storeError(operation: string, path: string, error: unknown): ChainError {
  return new ChainError(`Could not ${operation} ${path} in the state folder: ${errorMessage(error)}`, { path, operation }, { cause: error });
}
