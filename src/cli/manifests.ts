// `egw manifests`: prints the install YAML (src/kube/manifests.ts; docs/kubernetes.md). The flags are checked here so
// a bad one names itself and nothing is printed.
import { Option, type Command } from 'commander';
import { CALICO_MODES, type CalicoMode } from '../kube/crds.js';
import { DEFAULT_MANIFEST_OPTIONS, installYaml } from '../kube/manifests.js';
import { DNS1123_LABEL } from '../api/validate-common.js';

export function addManifestsCommand(program: Command, out: (s: string) => void, fail: (message: string) => never): void {
  program
    .command('manifests')
    .description('print the YAML that installs egw on a Kubernetes cluster (namespace, CRDs, RBAC, agent DaemonSet, controller Deployment)')
    .option('--image <ref>', 'container image for every role', DEFAULT_MANIFEST_OPTIONS.image)
    .option('--namespace <ns>', 'namespace of egw\'s own pods', DEFAULT_MANIFEST_OPTIONS.namespace)
    .addOption(new Option('--calico-mode <mode>', 'apiserver: calico-apiserver serves projectcalico.org/v3 (the policy CRD is egw.dev/v1); native-v3: projectcalico.org/v3 CRDs').choices(CALICO_MODES as string[]).default(DEFAULT_MANIFEST_OPTIONS.calicoMode))
    .action((opts: { image: string; namespace: string; calicoMode: CalicoMode }) => {
      if (!DNS1123_LABEL.test(opts.namespace) || opts.namespace.length > 63) fail(`--namespace: ${JSON.stringify(opts.namespace)} is not a valid namespace name (DNS-1123 label)`);
      if (!opts.image.trim() || /\s/.test(opts.image)) fail(`--image: ${JSON.stringify(opts.image)} is not an image reference`);
      out(installYaml(opts));
    });
}
