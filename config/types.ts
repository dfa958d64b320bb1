// The inventory as Castellan understands it: what exists. Produced by config/inventory.ts
// from Ansible YAML or INI inventories; consumed by targeting, tools and the SSH executor.

export interface Host {
  /** Inventory name (what operators type and what output shows). */
  readonly name: string;
  /** Where to connect: `ansible_host`, else the name. */
  readonly address: string;
  /** `ansible_port`, else the configured default (22). */
  readonly port: number;
  /** `ansible_user`, else undefined (the config's ssh.user applies). */
  readonly user: string | undefined;
  /** `ansible_ssh_private_key_file` (absolute), else undefined. */
  readonly privateKeyFile: string | undefined;
  /** Every group the host belongs to, directly or through nested groups, in inventory order. */
  readonly groups: readonly string[];
  /** Castellan labels (`castellan_labels` or `labels` var), e.g. role=k8s-worker, rack=left. */
  readonly labels: Readonly<Record<string, string>>;
  /** Merged group and host vars (host wins), for tools that need them. */
  readonly vars: Readonly<Record<string, unknown>>;
}

export interface Inventory {
  /** Files it was read from, for error messages. */
  readonly sources: readonly string[];
  /** Hosts in first-seen inventory order. */
  readonly hosts: ReadonlyMap<string, Host>;
  /** Group name -> host names (recursive through children), ordered, de-duplicated. `all` included. */
  readonly groups: ReadonlyMap<string, readonly string[]>;
  /** Group name -> direct child group names (for list_groups). */
  readonly children: ReadonlyMap<string, readonly string[]>;
}
