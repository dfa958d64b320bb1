import { nodeSchedulingTool } from './kubernetes.js';

export const k8sUncordon = nodeSchedulingTool({
  name: 'k8s_uncordon',
  verb: 'uncordon',
  title: 'Uncordon Kubernetes nodes',
  description: 'Mark Kubernetes nodes schedulable again, running kubectl on one control-plane host. Mirrors `kubectl uncordon NODE`.',
});
