import { inflateSync } from 'node:zlib';
import { decodeUtf8 } from './asn1.js';

/**
 * The paths a certificate entitles, as plain JSON-able data (what the cache stores): `nodes[0]` is the root;
 * each node lists its edges as `[segment, child index]`; a node without edges ends an entitled path, so
 * everything at or below it is entitled. One segment may lead to several children (a v3 tree may hold
 * `/foo/path` and `/foo/path/never` as two `path` edges). A segment starting with `$` (`$releasever`,
 * `$basearch`) stands for any one segment. Nodes may be shared (the tree is a DAG) but never form a cycle.
 */
export interface PathTreeData {
  nodes: Array<Array<[segment: string, child: number]>>;
}

export interface PathTreeLimits {
  /** Largest inflated word list of a v3 payload, in bytes (a zlib bomb stops here). @default 1048576 (1 MiB) */
  maxWordListBytes?: number;
  /** Most nodes in a path tree. @default 100000 */
  maxNodes?: number;
  /** Most edges in a path tree. @default 1000000 */
  maxEdges?: number;
}

export const pathTreeDefaults = {
  maxWordListBytes: 1024 * 1024,
  maxNodes: 100_000,
  maxEdges: 1_000_000,
} satisfies Required<PathTreeLimits>;

/** The entitlement data is not a well-formed path tree. */
export class PathTreeError extends Error {
  override readonly name = 'PathTreeError';
}

/** What dnf fetches to learn the values of `$releasever`; see `PathTree.matches`. */
const LISTING = 'listing';

/** Paths whose answer each tree remembers. */
const MAX_ANSWERS = 1024;

/** Node table with validated indices and no cycle, plus per-node lookup structures for matching. */
export class PathTree {
  private readonly exact: Array<Map<string, number[]>>;
  private readonly variables: number[][];
  /** Answers already worked out, by path, for matching without and with `listing`. */
  private readonly answers: [Map<string, boolean>, Map<string, boolean>] = [new Map(), new Map()];

  private constructor(readonly data: PathTreeData) {
    this.exact = data.nodes.map((edges) => {
      const map = new Map<string, number[]>();
      for (const [segment, child] of edges) {
        if (segment.startsWith('$')) continue;
        const list = map.get(segment);
        if (list) list.push(child);
        else map.set(segment, [child]);
      }
      return map;
    });
    this.variables = data.nodes.map((edges) => edges.filter(([s]) => s.startsWith('$')).map(([, c]) => c));
  }

  /**
   * Checks untrusted data (from the cache store, or just decoded) and builds the matcher. Throws a
   * PathTreeError when an index is out of range, a node is part of a cycle, or the root has no edges (a root
   * that ends a path would entitle everything, which no issuer means).
   */
  static fromData(data: unknown, limits: PathTreeLimits = {}): PathTree {
    const maxNodes = limits.maxNodes ?? pathTreeDefaults.maxNodes;
    const maxEdges = limits.maxEdges ?? pathTreeDefaults.maxEdges;
    const nodes = (data as PathTreeData | null)?.nodes;
    if (!Array.isArray(nodes) || nodes.length === 0) throw new PathTreeError('no nodes');
    if (nodes.length > maxNodes) throw new PathTreeError('too many nodes');
    let edgeCount = 0;
    for (const edges of nodes as unknown[]) {
      if (!Array.isArray(edges)) throw new PathTreeError('malformed node');
      edgeCount += edges.length;
      if (edgeCount > maxEdges) throw new PathTreeError('too many edges');
      for (const edge of edges as unknown[]) {
        if (
          !Array.isArray(edge) ||
          edge.length !== 2 ||
          typeof edge[0] !== 'string' ||
          edge[0] === '' ||
          !Number.isInteger(edge[1]) ||
          (edge[1] as number) < 1 ||
          (edge[1] as number) >= nodes.length
        ) {
          throw new PathTreeError('malformed edge');
        }
      }
    }
    const checked = { nodes } as PathTreeData;
    if (checked.nodes[0]!.length === 0) throw new PathTreeError('the root ends a path');
    assertAcyclic(checked.nodes);
    return new PathTree(checked);
  }

  /** A tree holding exactly `paths` (v1 certificates list their paths one by one). Empty paths are ignored. */
  static fromPaths(paths: Iterable<string>, limits: PathTreeLimits = {}): PathTree {
    // Node 1 is the one shared end of all paths.
    const nodes: Array<Array<[string, number]>> = [[], []];
    const END = 1;
    for (const path of paths) {
      const segments = splitPath(path);
      if (segments.length === 0) continue;
      let node = 0;
      for (let i = 0; i < segments.length; i++) {
        const segment = segments[i]!;
        const edges = nodes[node]!;
        if (i === segments.length - 1) {
          // A shorter path already ends here or below: drop the longer branch, the shorter one covers it.
          const existing = edges.findIndex(([s]) => s === segment);
          if (existing === -1) edges.push([segment, END]);
          else edges[existing] = [segment, END];
          break;
        }
        const next = edges.find(([s]) => s === segment)?.[1];
        if (next === END) break;
        if (next !== undefined) {
          node = next;
        } else {
          nodes.push([]);
          edges.push([segment, nodes.length - 1]);
          node = nodes.length - 1;
        }
      }
    }
    if (nodes[0]!.length === 0) throw new PathTreeError('no paths');
    return PathTree.fromData({ nodes }, limits);
  }

  /**
   * Whether `path` is at or below an entitled path. Segments are compared whole (`/os2` does not match `/os`);
   * a `$variable` in the tree matches any one segment. With `listing` (v3 trees, as python-rhsm does), a path
   * whose last segment is `listing` is also allowed wherever it leaves the tree before an entitled path ends:
   * with `/foo/path/bar` entitled, `/foo/listing` and `/foo/path/listing` are allowed, `/foo/path/alfred` and
   * `/foo/path/listing/more` are not. Empty segments are ignored; `.` and `..` never match.
   */
  matches(path: string, options: { listing: boolean }): boolean {
    // The same certificate asks for the same few paths again and again (repodata, then packages).
    const answers = this.answers[options.listing ? 1 : 0];
    let answer = answers.get(path);
    if (answer === undefined) {
      answer = this.walk(path, options.listing);
      // Bounded: past the limit the memo starts over rather than tracking recency.
      if (answers.size >= MAX_ANSWERS) answers.clear();
      answers.set(path, answer);
    }
    return answer;
  }

  private walk(path: string, listing: boolean): boolean {
    const segments = splitPath(path);
    if (segments.some((s) => s === '.' || s === '..')) return false;
    const n = segments.length;
    // Walk the states (node, depth) once each: the tree is a DAG and `$` edges branch, so a plain
    // recursion could revisit a state exponentially often.
    const seen = new Set<number>();
    const stack: Array<[number, number]> = [[0, 0]];
    while (stack.length > 0) {
      const [node, depth] = stack.pop()!;
      const key = node * (n + 1) + depth;
      if (seen.has(key)) continue;
      seen.add(key);
      if (this.data.nodes[node]!.length === 0) return true;
      if (depth === n) continue;
      const segment = segments[depth]!;
      if (listing && segment === LISTING && depth === n - 1) return true;
      for (const child of this.exact[node]!.get(segment) ?? []) stack.push([child, depth + 1]);
      for (const child of this.variables[node]!) stack.push([child, depth + 1]);
    }
    return false;
  }

  /** Every entitled path, sorted; throws a PathTreeError beyond `max` paths (a DAG can stand for very many). */
  paths(max = 10_000): string[] {
    const out: string[] = [];
    const walk = (node: number, prefix: string) => {
      const edges = this.data.nodes[node]!;
      if (edges.length === 0) {
        if (out.length >= max) throw new PathTreeError('too many paths');
        out.push(prefix);
        return;
      }
      for (const [segment, child] of edges) walk(child, `${prefix}/${segment}`);
    };
    walk(0, '');
    return [...new Set(out)].sort();
  }
}

function splitPath(path: string): string[] {
  return path.split('/').filter((s) => s !== '');
}

/** Iterative three-colour depth-first search from the root; nodes the root cannot reach do not matter. */
function assertAcyclic(nodes: ReadonlyArray<ReadonlyArray<readonly [string, number]>>): void {
  const state = new Uint8Array(nodes.length); // 0 new, 1 on the current path, 2 done
  const stack: Array<[node: number, nextEdge: number]> = [[0, 0]];
  state[0] = 1;
  while (stack.length > 0) {
    const top = stack[stack.length - 1]!;
    const edges = nodes[top[0]]!;
    if (top[1] === edges.length) {
      state[top[0]] = 2;
      stack.pop();
      continue;
    }
    const child = edges[top[1]++]![1];
    if (state[child] === 1) throw new PathTreeError('the path tree has a cycle');
    if (state[child] === 0) {
      state[child] = 1;
      stack.push([child, 0]);
    }
  }
}

/**
 * Decodes a v3 entitlement payload (the contents of extension 1.3.6.1.4.1.2312.9.7), the format Candlepin
 * writes and python-rhsm's `PathTree` reads:
 *
 * 1. a zlib stream of the tree's distinct segments, each followed by a NUL. Splitting on NUL leaves an empty
 *    last word, which marks the end of a node. Word `i` (from 0) has weight `i + 1`.
 * 2. right after the zlib stream, the node count (root included): one byte below 128, or `128 + k` followed by
 *    `k` big-endian bytes of count.
 * 3. a bit stream (most significant bit first) that lists each node in order, root first: pairs of
 *    (Huffman code of a word, Huffman code of the child node) and then the code of the empty word. Node `j`
 *    (from 1; the root is never a child) has weight `j`.
 *
 * Both Huffman codes are built the same way: leaves in weight order; repeatedly the two lightest nodes are
 * joined, ties going to the one queued first, the first taken becoming the left (`0`) branch and the joined
 * node queuing last.
 */
export function decodePathTree(payload: Uint8Array, limits: PathTreeLimits = {}): PathTree {
  const maxWordListBytes = limits.maxWordListBytes ?? pathTreeDefaults.maxWordListBytes;
  const maxNodes = limits.maxNodes ?? pathTreeDefaults.maxNodes;
  const maxEdges = limits.maxEdges ?? pathTreeDefaults.maxEdges;

  let inflated: Buffer;
  let consumed: number;
  try {
    // `info` exposes the engine, whose `bytesWritten` tells where the zlib stream ended and the node table
    // begins; `maxOutputLength` stops a zlib bomb before it fills memory.
    const result = inflateSync(payload, { info: true, maxOutputLength: maxWordListBytes }) as unknown as {
      buffer: Buffer;
      engine: { bytesWritten: number };
    };
    inflated = result.buffer;
    consumed = result.engine.bytesWritten;
  } catch {
    throw new PathTreeError('the word list is not a complete zlib stream, or too large');
  }
  if (!Number.isInteger(consumed) || consumed <= 0 || consumed > payload.length) {
    throw new PathTreeError('the word list is not a complete zlib stream');
  }

  let words: string[];
  try {
    words = decodeUtf8(inflated).split('\0');
  } catch {
    throw new PathTreeError('a word is not UTF-8');
  }
  const wordCode = HuffmanCode.build(words.length);

  const bits = new BitReader(payload.subarray(consumed));
  const first = bits.byte();
  let nodeCount = first;
  if (first >= 128) {
    const size = first - 128;
    if (size < 1 || size > 4) throw new PathTreeError('bad node count');
    nodeCount = 0;
    for (let i = 0; i < size; i++) nodeCount = nodeCount * 256 + bits.byte();
  }
  // Every node costs at least one bit (its end code), so a count beyond the bits left is a lie.
  if (nodeCount > maxNodes || nodeCount > bits.remaining()) throw new PathTreeError('bad node count');
  // Candlepin adds a spare node so that node codes always have at least two leaves (a one-leaf Huffman code
  // would have zero bits).
  if (nodeCount < 3) throw new PathTreeError('too few nodes');
  const nodeCode = HuffmanCode.build(nodeCount - 1);

  const nodes: Array<Array<[string, number]>> = [];
  let edgeCount = 0;
  for (let node = 0; node < nodeCount; node++) {
    const edges: Array<[string, number]> = [];
    for (;;) {
      const word = words[wordCode.read(bits)]!;
      if (word === '') break;
      const child = nodeCode.read(bits) + 1;
      if (++edgeCount > maxEdges) throw new PathTreeError('too many edges');
      edges.push([word, child]);
    }
    nodes.push(edges);
  }
  return PathTree.fromData({ nodes }, limits);
}

class BitReader {
  private bit = 0;
  constructor(private readonly bytes: Uint8Array) {}

  remaining(): number {
    return this.bytes.length * 8 - this.bit;
  }

  /** The next 8 bits; only called on a byte boundary. */
  byte(): number {
    if (this.remaining() < 8) throw new PathTreeError('the node table is truncated');
    const value = this.bytes[this.bit >> 3]!;
    this.bit += 8;
    return value;
  }

  next(): number {
    if (this.bit >= this.bytes.length * 8) throw new PathTreeError('the node table is truncated');
    const value = (this.bytes[this.bit >> 3]! >> (7 - (this.bit & 7))) & 1;
    this.bit++;
    return value;
  }
}

/** A decoding tree for Huffman codes over symbols 0..n-1 whose weights are 1..n. */
class HuffmanCode {
  private constructor(
    /** For an inner node `k` (numbered from `n`), its children; leaves are the symbols 0..n-1. */
    private readonly left: Int32Array,
    private readonly right: Int32Array,
    private readonly root: number,
    private readonly n: number,
  ) {}

  static build(n: number): HuffmanCode {
    if (n < 2) throw new PathTreeError('a Huffman code needs at least two symbols');
    const left = new Int32Array(n - 1);
    const right = new Int32Array(n - 1);
    const weight = new Float64Array(2 * n - 1);
    for (let i = 0; i < n; i++) weight[i] = i + 1;
    // Leaves are already in weight order and joined nodes come out in weight order too, so two queues
    // replace a heap. On equal weights a leaf wins: it was queued before any joined node.
    let nextLeaf = 0;
    let nextJoined = n;
    let created = n;
    const take = (): number => {
      if (nextLeaf < n && (nextJoined >= created || weight[nextLeaf]! <= weight[nextJoined]!)) return nextLeaf++;
      return nextJoined++;
    };
    while (created < 2 * n - 1) {
      const a = take();
      const b = take();
      weight[created] = weight[a]! + weight[b]!;
      left[created - n] = a;
      right[created - n] = b;
      created++;
    }
    return new HuffmanCode(left, right, created - 1, n);
  }

  read(bits: BitReader): number {
    let node = this.root;
    while (node >= this.n) node = bits.next() === 0 ? this.left[node - this.n]! : this.right[node - this.n]!;
    return node;
  }
}
