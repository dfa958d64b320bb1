import { nodeSchedulingTool } from './kubernetes.js';

export const k8sCordon = nodeSchedulingTool({
  name: 'k8s_cordon',
  verb: 'cordon',
  title: 'Cordon Kubernetes nodes',
  description: 'Mark Kubernetes nodes unschedulable so no new pods land on them (running pods stay), running kubectl on one control-plane host. Mirrors `kubectl cordon NODE`.',
});
