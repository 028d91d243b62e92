import { deflateSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { fixtureBytes } from '../../../../test/fixtures/entitlement.js';
import { encodePathTree } from '../../../../test/fixtures/pathtree-encoder.js';
import { decodePathTree, PathTree, PathTreeError } from './path-tree.js';

const SATELLITE = '/DPS_Satellite/Library/WF-RHEL-7-CV-2018_33-OS/content/dist/rhel/server/7';

function refused(run: () => unknown): string {
  try {
    run();
  } catch (err) {
    expect(err).toBeInstanceOf(PathTreeError);
    return (err as Error).message;
  }
  throw new Error('expected a PathTreeError');
}

describe('decodePathTree on the shared fixtures', () => {
  it('decodes entitlement_data.bin to exactly its three paths', () => {
    const tree = decodePathTree(fixtureBytes('pathtree/entitlement_data.bin'));
    expect(tree.paths()).toEqual(['/foo/path', '/foo/path/always/$releasever', '/foo/path/never']);
  });

  it('keeps the node that holds the word "path" twice', () => {
    const tree = decodePathTree(fixtureBytes('pathtree/entitlement_data.bin'));
    const twice = tree.data.nodes.find((edges) => edges.filter(([w]) => w === 'path').length === 2);
    expect(twice).toBeDefined();
  });

  it('decodes satellite_generated_data.bin to exactly its six paths', () => {
    const tree = decodePathTree(fixtureBytes('pathtree/satellite_generated_data.bin'));
    expect(tree.paths()).toEqual(
      [
        '/$releasever/$basearch/os',
        '/$releasever/$basearch/optional/os',
        '/$releasever/$basearch/rh-common/os',
        '/$releasever/$basearch/rhn-tools/os',
        '/7Server/$basearch/extras/os',
        '/7Server/$basearch/sat-tools/6.3/os',
      ]
        .map((p) => SATELLITE + p)
        .sort(),
    );
  });

  it('produces JSON-able data that rebuilds the same tree', () => {
    const tree = decodePathTree(fixtureBytes('pathtree/satellite_generated_data.bin'));
    const again = PathTree.fromData(JSON.parse(JSON.stringify(tree.data)));
    expect(again.paths()).toEqual(tree.paths());
  });
});

describe('PathTree.matches', () => {
  const satellite = decodePathTree(fixtureBytes('pathtree/satellite_generated_data.bin'));
  const data = decodePathTree(fixtureBytes('pathtree/entitlement_data.bin'));
  const v3 = { listing: true };

  it('allows an entitled path and everything below it', () => {
    expect(satellite.matches(`${SATELLITE}/7.4/x86_64/os`, v3)).toBe(true);
    expect(satellite.matches(`${SATELLITE}/7.4/x86_64/os/Packages/a.rpm`, v3)).toBe(true);
    expect(satellite.matches(`${SATELLITE}/7Server/x86_64/sat-tools/6.3/os/repodata/repomd.xml`, v3)).toBe(true);
  });

  it('lets a $variable stand for exactly one segment', () => {
    expect(satellite.matches(`${SATELLITE}/x86_64/os/a.rpm`, v3)).toBe(false);
    expect(satellite.matches(`${SATELLITE}/7.4/extra/x86_64/os/a.rpm`, v3)).toBe(false);
    expect(data.matches('/foo/path/always/8/x', v3)).toBe(true);
  });

  it('respects segment boundaries', () => {
    expect(satellite.matches(`${SATELLITE}/7Server/x86_64/extras/os2/x.rpm`, v3)).toBe(false);
    expect(satellite.matches(`${SATELLITE}/7Server/x86_64/extras/o`, v3)).toBe(false);
    expect(data.matches('/foo/pathology', v3)).toBe(false);
    expect(data.matches('/foo/pat', v3)).toBe(false);
  });

  it('refuses a path shorter than the entitled one, and other bases', () => {
    expect(satellite.matches(SATELLITE, v3)).toBe(false);
    expect(satellite.matches(`${SATELLITE}/7Server/x86_64/extras`, v3)).toBe(false);
    expect(satellite.matches('/this-is-not-a-valid-base-path/x', v3)).toBe(false);
    expect(satellite.matches('/', v3)).toBe(false);
    expect(satellite.matches('', v3)).toBe(false);
  });

  it('treats the one entitled path of a duplicated word as entitling everything below it', () => {
    expect(data.matches('/foo/path', v3)).toBe(true);
    expect(data.matches('/foo/path/anything/else', v3)).toBe(true);
    expect(data.matches('/foo', v3)).toBe(false);
  });

  it('ignores empty segments and never matches . or ..', () => {
    expect(data.matches('//foo//path/', v3)).toBe(true);
    expect(data.matches('/foo/path/../x', v3)).toBe(false);
    expect(data.matches('/foo/./path', v3)).toBe(false);
  });

  describe('the listing rule (fixtures README: a tree for /foo/path/bar)', () => {
    const tree = decodePathTree(encodePathTree(PathTree.fromPaths(['/foo/path/bar']).data.nodes));

    it('decodes the encoded tree', () => {
      expect(tree.paths()).toEqual(['/foo/path/bar']);
    });

    it.each(['/foo/path/bar/listing', '/foo/path/listing', '/foo/listing'])('allows %s', (path) => {
      expect(tree.matches(path, v3)).toBe(true);
    });

    it.each(['/foo/path/alfred', '/foo/path/listing/for/alfred', '/foo/path/listing/x', '/foo/path/bar2/listing', '/bar/listing/x'])(
      'refuses %s',
      (path) => {
        expect(tree.matches(path, v3)).toBe(false);
      },
    );

    it('does not apply without the listing option (v1 certificates)', () => {
      expect(tree.matches('/foo/path/listing', { listing: false })).toBe(false);
      expect(tree.matches('/foo/path/bar/listing', { listing: false })).toBe(true);
    });

    it('lets a $variable edge consume "listing" as an ordinary segment', () => {
      expect(data.matches('/foo/path/always/listing', v3)).toBe(true);
    });
  });

  it('stays fast on a DAG whose walks are exponential', () => {
    // 40 layers, each with two $variable edges to the same next node: 2^40 walks, 41 × 42 states.
    const nodes: Array<Array<[string, number]>> = [];
    for (let i = 0; i < 40; i++) nodes.push([['$a', i + 1], ['$b', i + 1]]);
    nodes.push([['end', 41]], []);
    const tree = PathTree.fromData({ nodes });
    const deep = `/${Array.from({ length: 40 }, () => 'x').join('/')}`;
    expect(tree.matches(`${deep}/not-end`, v3)).toBe(false);
    expect(tree.matches(`${deep}/end/x`, v3)).toBe(true);
    expect(refused(() => tree.paths(1000))).toMatch(/too many paths/);
  });
});

describe('PathTree.matches remembers answers', () => {
  it('gives the same answers when asked again, past the size of its memo, with and without listing', () => {
    const tree = PathTree.fromPaths(['/foo/path/bar', '/foo/$v/baz']);
    const paths = Array.from({ length: 3000 }, (_, i) =>
      i % 3 === 0 ? `/foo/path/bar/${i}` : i % 3 === 1 ? `/foo/${i}/baz/x` : `/foo/${i}/other`,
    );
    const first = paths.map((p) => [tree.matches(p, { listing: false }), tree.matches(p, { listing: true })]);
    expect(first.filter(([a]) => a)).toHaveLength(2000);
    for (let round = 0; round < 2; round++) {
      expect(paths.map((p) => [tree.matches(p, { listing: false }), tree.matches(p, { listing: true })])).toEqual(first);
    }
    // The listing answer is kept apart from the plain one.
    expect(tree.matches('/foo/listing', { listing: true })).toBe(true);
    expect(tree.matches('/foo/listing', { listing: false })).toBe(false);
  });
});

describe('PathTree.fromPaths (v1 certificates)', () => {
  it('holds exactly the given paths', () => {
    const paths = ['/a/b/c', '/a/b/d', '/x/$releasever/y'];
    expect(PathTree.fromPaths(paths).paths()).toEqual(paths);
  });

  it('lets a shorter path cover a longer one, in either order', () => {
    expect(PathTree.fromPaths(['/a/b/c', '/a/b']).paths()).toEqual(['/a/b']);
    expect(PathTree.fromPaths(['/a/b', '/a/b/c']).paths()).toEqual(['/a/b']);
  });

  it('ignores empty paths, and refuses a list with none left', () => {
    expect(PathTree.fromPaths(['', '/', '/a']).paths()).toEqual(['/a']);
    expect(refused(() => PathTree.fromPaths(['/', '']))).toMatch(/no paths/);
  });
});

describe('decodePathTree refuses malformed payloads', () => {
  const good = fixtureBytes('pathtree/satellite_generated_data.bin');
  const words = deflateSync(Buffer.from('a\0b\0'));

  it.each([
    ['empty', Buffer.alloc(0), /zlib/],
    ['not zlib', Buffer.from('this is not zlib at all'), /zlib/],
    ['a truncated zlib stream', good.subarray(0, 40), /zlib/],
    ['a word list without a node table', words, /truncated/],
    ['a truncated node table', good.subarray(0, good.length - 3), /truncated/],
    ['a node count beyond the bits left', Buffer.concat([words, Buffer.from([120, 0xff])]), /node count/],
    ['a node count of too many bytes', Buffer.concat([words, Buffer.from([133, 1, 1, 1, 1, 1, 0xff])]), /node count/],
    ['fewer than three nodes', Buffer.concat([words, Buffer.from([2, 0xff, 0xff])]), /too few nodes/],
    ['an empty word list', Buffer.concat([deflateSync(Buffer.alloc(0)), Buffer.from([3, 0, 0, 0])]), /two symbols/],
    ['a word that is not UTF-8', Buffer.concat([deflateSync(Buffer.from([0x61, 0, 0xff, 0xfe, 0])), Buffer.from([3, 0, 0])]), /UTF-8/],
  ])('%s', (_name, payload, reason) => {
    expect(refused(() => decodePathTree(payload))).toMatch(reason);
  });

  it('stops a zlib bomb at the inflated size limit', () => {
    const bomb = deflateSync(Buffer.alloc(64 * 1024 * 1024));
    expect(bomb.length).toBeLessThan(100 * 1024);
    expect(refused(() => decodePathTree(bomb))).toMatch(/too large/);
    refused(() => decodePathTree(fixtureBytes('pathtree/satellite_generated_data.bin'), { maxWordListBytes: 100 }));
  });

  it('refuses a cycle', () => {
    const payload = encodePathTree([[['a', 1]], [['b', 2]], [['c', 1]], []]);
    expect(refused(() => decodePathTree(payload))).toMatch(/cycle/);
  });

  it('refuses a self-loop', () => {
    expect(refused(() => decodePathTree(encodePathTree([[['a', 1]], [['b', 1]], []])))).toMatch(/cycle/);
  });

  it('refuses a root without edges (it would entitle everything)', () => {
    expect(refused(() => decodePathTree(encodePathTree([[], [['a', 2]], []])))).toMatch(/root/);
  });

  it('enforces the node and edge limits', () => {
    const payload = fixtureBytes('pathtree/satellite_generated_data.bin');
    refused(() => decodePathTree(payload, { maxNodes: 5 }));
    refused(() => decodePathTree(payload, { maxEdges: 5 }));
  });

  it('reads a node count written on several bytes', () => {
    // 300 nodes in a chain: the count needs the 128 + k form.
    const nodes: Array<Array<[string, number]>> = [];
    for (let i = 0; i < 299; i++) nodes.push([[`s${i % 7}`, i + 1]]);
    nodes.push([]);
    const tree = decodePathTree(encodePathTree(nodes));
    expect(tree.data.nodes).toHaveLength(300);
    expect(tree.paths()).toHaveLength(1);
  });
});

describe('PathTree.fromData refuses malformed cached data', () => {
  it.each([
    ['null', null],
    ['no nodes', { nodes: [] }],
    ['a node that is not a list', { nodes: [{}] }],
    ['an edge of the wrong shape', { nodes: [[['a']], []] }],
    ['an empty segment', { nodes: [[['', 1]], []] }],
    ['a child out of range', { nodes: [[['a', 2]], []] }],
    ['an edge to the root', { nodes: [[['a', 0]], []] }],
    ['a fractional child', { nodes: [[['a', 0.5]], []] }],
    ['a cycle', { nodes: [[['a', 1]], [['b', 1]]] }],
    ['a root without edges', { nodes: [[], []] }],
  ])('%s', (_name, data) => {
    refused(() => PathTree.fromData(data));
  });
});
