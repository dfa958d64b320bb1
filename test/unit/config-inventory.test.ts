import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { homedir, tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { InventoryError, loadInventory, parseInventory } from '../../config/inventory.js';
import type { Inventory } from '../../config/types.js';

const examples = join(import.meta.dirname, '../../config/examples');
let dir: string;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'castellan-inventory-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

function errorOf(text: string, source = 'inv.yaml'): InventoryError {
  try {
    parseInventory(text, source);
  } catch (error) {
    expect(error).toBeInstanceOf(InventoryError);
    return error as InventoryError;
  }
  throw new Error('expected an InventoryError');
}

/** Everything but the sources, for comparing two forms of the same inventory. */
function shape(inventory: Inventory) {
  return {
    hosts: [...inventory.hosts.values()],
    groups: [...inventory.groups.entries()].sort(),
    children: [...inventory.children.entries()].map(([g, c]) => [g, [...c].sort()]).sort(),
  };
}

describe('YAML inventory', () => {
  it('reads the 13-node homelab example: order, nesting, vars, labels', async () => {
    const inv = await loadInventory([join(examples, 'homelab-13.yaml')]);
    const names = [...inv.hosts.keys()];
    expect(names).toEqual(['allyrion', 'bettley', 'cargyll', 'dalt', 'erenford', 'fenn', 'gardener', 'harlton', 'inchfield', 'jast', 'karstark', 'lipps', 'manderly']);
    expect(inv.groups.get('all')).toEqual(names);
    expect(inv.groups.get('k8s_cluster')).toEqual(names.slice(0, 12));
    expect(inv.groups.get('k8s_control_plane')).toEqual(['allyrion', 'bettley', 'cargyll']);
    expect(inv.groups.get('storage_nodes')).toEqual(['jast', 'karstark', 'lipps']);
    expect(inv.children.get('k8s_cluster')).toEqual(['k8s_control_plane', 'k8s_worker']);
    expect(inv.children.get('all')).toEqual(['all_pis', 'k8s_cluster', 'consul_server', 'storage_nodes', 'load_balancer']);
    expect(inv.groups.has('ungrouped')).toBe(false);

    const manderly = inv.hosts.get('manderly')!;
    expect(manderly).toMatchObject({ address: '10.4.0.22', port: 2222, user: 'pi', privateKeyFile: join(homedir(), '.ssh/homelab_ed25519') });
    expect(manderly.labels).toEqual({ site: 'homelab', hardware: 'pi5', rack: 'right', role: 'lb' });
    expect(manderly.groups).toEqual(['all', 'all_pis', 'load_balancer']);

    const jast = inv.hosts.get('jast')!;
    expect(jast.groups).toEqual(['all', 'all_pis', 'k8s_cluster', 'k8s_worker', 'storage_nodes']);
    expect(jast.labels).toEqual({ site: 'homelab', hardware: 'pi4b', rack: 'right', role: 'k8s-worker', storage: 'zfs' });
    expect(jast.vars).toMatchObject({ k8s_version: '1.33', zfs_pool: 'tank', ansible_host: '10.4.0.19' });
    expect(jast.port).toBe(22);
  });

  it('reads host ranges in the 16-node rack example', async () => {
    const inv = await loadInventory([join(examples, 'rack-16.yaml')], { defaultPort: 2200 });
    const names = [...inv.hosts.keys()];
    expect(names).toEqual(Array.from({ length: 16 }, (_, i) => `node${String(i).padStart(2, '0')}`));
    expect(inv.groups.get('blue')).toEqual(names.slice(0, 8));
    expect(inv.groups.get('green')).toEqual(names.slice(8));
    const roles = names.map((n) => inv.hosts.get(n)!.labels.role);
    expect(new Set(roles)).toEqual(new Set(['k8s-control', 'k8s-worker', 'k8s-lb', 'storage', 'prometheus', 'grafana']));
    expect(roles.every((r) => r !== undefined)).toBe(true);
    expect(inv.hosts.get('node09')!.labels).toEqual({ half: 'green', role: 'k8s-lb' });
    expect(inv.hosts.get('node00')!.port).toBe(2200);
    expect(inv.groups.get('monitoring')).toEqual(['node07', 'node15']);
  });

  it('applies Ansible precedence: child group over parent, host over groups', () => {
    const inv = parseInventory(
      `all:
  vars: { x: all, y: all, z: all }
  children:
    parent:
      vars: { x: parent, y: parent }
      children:
        child:
          vars: { x: child }
          hosts:
            h1: { z: host }
    # a shallower group sorted after "child" by name still loses to the deeper one
    zeta:
      vars: { x: zeta }
      hosts: { h1: }
`,
      'p.yaml',
    );
    expect(inv.hosts.get('h1')!.vars).toMatchObject({ x: 'child', y: 'parent', z: 'host' });
  });

  it('merges several files: hosts, groups and later vars', async () => {
    const a = join(dir, 'a.yaml');
    const b = join(dir, 'b.ini');
    await writeFile(a, 'all:\n  children:\n    web:\n      hosts:\n        w1: { ansible_port: 2201 }\n        w2:\n');
    await writeFile(b, '[web]\nw3\n[db]\nd1 ansible_user=postgres\n[web:vars]\nansible_port=2222\n');
    const inv = await loadInventory([a, b]);
    expect(inv.sources).toEqual([a, b]);
    expect([...inv.hosts.keys()]).toEqual(['w1', 'w2', 'w3', 'd1']);
    expect(inv.groups.get('web')).toEqual(['w1', 'w2', 'w3']);
    expect(inv.hosts.get('w1')!.port).toBe(2201);
    expect(inv.hosts.get('w2')!.port).toBe(2222);
    expect(inv.hosts.get('d1')!.user).toBe('postgres');
  });

  it('resolves key files against the inventory file and keeps `all` and `ungrouped`', () => {
    const inv = parseInventory('all:\n  hosts:\n    lone:\n      ansible_ssh_private_key_file: keys/lone\n', '/srv/inv/hosts.yaml');
    expect(inv.hosts.get('lone')!.privateKeyFile).toBe('/srv/inv/keys/lone');
    expect(inv.groups.get('all')).toEqual(['lone']);
    expect(inv.groups.get('ungrouped')).toEqual(['lone']);
    expect(parseInventory('', 'empty.yaml').groups.get('all')).toEqual([]);
  });

  it('names the file and the path of each mistake', () => {
    expect(errorOf('all:\n  children:\n    k8s:\n      host:\n        a:\n').message).toBe(
      "inv.yaml: all.children.k8s.host: unknown key in group 'k8s' (expected hosts, vars or children) (did you mean 'hosts'?)",
    );
    expect(errorOf('all:\n  hosts: [a, b]\n').message).toMatch(/^inv\.yaml: all\.hosts: expected a mapping of host names/);
    expect(errorOf('all:\n  hosts:\n    a: { ansible_port: http }\n').message).toBe('inv.yaml: all.hosts.a.ansible_port: expected a port number 1-65535, found "http"');
    expect(errorOf('all:\n  hosts:\n    a: { ansible_host: "{{ lookup(x) }}" }\n').message).toMatch(/all\.hosts\.a\.ansible_host: Jinja templates are not evaluated/);
    expect(errorOf('all:\n  hosts:\n    a: { castellan_labels: [x] }\n').message).toMatch(/all\.hosts\.a\.castellan_labels: expected a mapping of label names/);
    expect(errorOf('all:\n  hosts:\n    a: { castellan_labels: { role: "two words" } }\n').message).toMatch(/castellan_labels\.role: label value must be a word/);
    expect(errorOf('all:\n  hosts:\n    "bad;name":\n').message).toMatch(/host name "bad;name" cannot be used in target expressions/);
    expect(errorOf('all:\n  hosts:\n    a: 1\n  hosts: {}\n').message).toMatch(/^inv\.yaml: line \d+, column \d+: invalid YAML/);
  });

  it('refuses a name that is both a host and a group, and group cycles', () => {
    expect(errorOf('all:\n  children:\n    web:\n      hosts: { db: }\n    db:\n      hosts: { d1: }\n').message).toMatch(/'db' is both a host and a group/);
    expect(errorOf('all:\n  children:\n    a:\n      children:\n        b:\n          children:\n            a:\n').message).toMatch(/group cycle: a -> b -> a/);
  });
});

describe('INI inventory', () => {
  it('gives the same hosts, groups, vars and labels as the YAML homelab', async () => {
    const yaml = await loadInventory([join(examples, 'homelab-13.yaml')]);
    const ini = await loadInventory([join(examples, 'homelab.ini')]);
    expect(shape(ini)).toEqual(shape(yaml));
  });

  it('reads ranges, host:port, quoting, literals, comments and ungrouped hosts', () => {
    const inv = parseInventory(
      `# comment
lonely ansible_host=192.0.2.1
[rack]
node[01:03] ansible_user=ops # trailing comment
db-[a:b]
edge:2200 note="two words" count=3 enabled=True castellan_labels="{'role': 'edge', 'rack': 2}"
[rack:vars]
; also a comment
site=home
[everything:children]
rack
`,
      'hosts',
    );
    expect([...inv.hosts.keys()]).toEqual(['lonely', 'node01', 'node02', 'node03', 'db-a', 'db-b', 'edge']);
    expect(inv.groups.get('ungrouped')).toEqual(['lonely']);
    expect(inv.groups.get('everything')).toEqual(['node01', 'node02', 'node03', 'db-a', 'db-b', 'edge']);
    const edge = inv.hosts.get('edge')!;
    expect(edge.port).toBe(2200);
    expect(edge.vars).toMatchObject({ note: 'two words', count: 3, enabled: true, site: 'home' });
    expect(edge.labels).toEqual({ role: 'edge', rack: '2' });
    expect(inv.hosts.get('node02')!.user).toBe('ops');
  });

  it('names the line of each mistake', () => {
    expect(errorOf('[web:things]\na\n', 'x.ini').message).toMatch(/^x\.ini: line 1: unknown section type ':things'/);
    expect(errorOf('[web]\na foo\n', 'x.ini').message).toBe("x.ini: line 2: expected key=value after the host name, found 'foo'");
    expect(errorOf('[web]\na note="unclosed\n', 'x.ini').message).toBe('x.ini: line 2: unclosed " quote');
    expect(errorOf('[web:vars]\njustakey\n', 'x.ini').message).toMatch(/line 2: expected key=value in \[web:vars\]/);
    expect(errorOf('[web]\nnode[1:x]\n', 'x.ini').message).toMatch(/line 2: bad host range/);
  });
});
