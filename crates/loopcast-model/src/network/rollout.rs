//! The looped core: one shared block looped per future patch under the patch's action
//! tokens, with retention, the exit gate, and the inference and training rollouts.

use burn::tensor::activation::sigmoid;
use burn::tensor::{Tensor, TensorData};

use super::{Inputs, LoopControl, Network, Rollout, Trace};
use crate::layers::MemoryKeys;

impl Network {
    /// The memory's cross-attention keys and values, computed once and read by every loop
    /// (once per block when the core is unshared).
    pub fn memory_keys(&self, memory: Tensor<3>) -> MemoryKeys {
        let blocks = std::iter::once(&self.core).chain(&self.unshared_cores);
        MemoryKeys { blocks: blocks.map(|block| block.memory_keys(memory.clone())).collect() }
    }

    /// Loop `round` (0-based) of a patch: the block's update, then retention. The shared
    /// block runs every round; an unshared core runs its own block per round.
    pub fn step(&self, state: Tensor<3>, actions: Tensor<3>, memory: &MemoryKeys, round: usize) -> Tensor<3> {
        let index = round.min(self.unshared_cores.len());
        let block = if index == 0 { &self.core } else { &self.unshared_cores[index - 1] };
        let update = block.forward(state.clone(), actions, &memory.blocks[index]);
        match &self.retention {
            Some(retention) => retention.apply(state, update),
            None => state + update,
        }
    }

    /// Where the rollout of patch `patch` starts when decoding is not deferred: the
    /// previous patch's median is decoded and appended to the history (`predicted` keeps
    /// every decoded patch), and the advanced history is encoded afresh. `None` for the
    /// first patch and whenever decoding is deferred (the state carries on in latent space).
    fn reencode(
        &self,
        inputs: &Inputs,
        actions: &Tensor<4>,
        patch: usize,
        state: &Tensor<3>,
        predicted: &mut Vec<Tensor<3>>,
    ) -> Option<(Tensor<3>, MemoryKeys)> {
        if self.deferred_decoding || patch == 0 {
            return None;
        }
        let quantiles = self.decode(inputs, actions, vec![state.clone().detach()], &[patch - 1]);
        let [b, t, p, _] = quantiles.dims();
        predicted.push(quantiles.slice([0..b, 0..t, 0..p, self.median..self.median + 1]).reshape([b, t, p]));
        let encoded = self.encode(&inputs.advanced(predicted));
        Some((encoded.state, self.memory_keys(encoded.memory)))
    }

    /// Exit probability `[B, 1]` from the new state and its change.
    pub fn gate(&self, state: Tensor<3>, change: Tensor<3>) -> Tensor<2> {
        let [b, _, d] = state.dims();
        let features = Tensor::cat(vec![state.mean_dim(1), change.mean_dim(1)], 2).reshape([b, 2 * d]);
        sigmoid(self.gate.forward(features))
    }

    /// Rolls the state forward over every future patch of `inputs` in latent space,
    /// looping the shared block per patch until each window's gate says its state has
    /// settled. Windows exit independently; a settled window's state is frozen while the
    /// others loop on.
    /// `state` is the initial state `[B, T + 1, d]` and `memory` the keys of its windows.
    pub fn rollout(
        &self,
        inputs: &Inputs,
        state: Tensor<3>,
        memory: MemoryKeys,
        control: LoopControl,
    ) -> Rollout {
        let actions = self.actions(inputs);
        let [b, a, k, d] = actions.dims();
        let (mut state, mut memory) = (state, memory);
        let mut states = Vec::with_capacity(k);
        let mut predicted = Vec::new();
        let mut loops = vec![Vec::with_capacity(k); b];
        let device = state.device();
        for patch in 0..k {
            if let Some((fresh, keys)) = self.reencode(inputs, &actions, patch, &state, &mut predicted) {
                (state, memory) = (fresh, keys);
            }
            let action = actions.clone().slice([0..b, 0..a, patch..patch + 1, 0..d]).reshape([b, a, d]);
            let mut done = vec![false; b];
            let mut used = vec![0u32; b];
            for round in 1..=control.max_loops {
                let next = self.step(state.clone(), action.clone(), &memory, round - 1);
                for (u, finished) in used.iter_mut().zip(&done) {
                    *u += u32::from(!finished);
                }
                let gate = (round >= control.min_loops && control.exit_threshold <= 1.0)
                    .then(|| self.gate(next.clone(), next.clone() - state.clone()));
                state = if done.iter().any(|x| *x) {
                    let frozen: Vec<bool> = done.clone();
                    let mask =
                        Tensor::<1, burn::tensor::Bool>::from_data(TensorData::new(frozen, [b]), &device)
                            .reshape([b, 1, 1])
                            .expand([b, next.dims()[1], d]);
                    next.mask_where(mask, state)
                } else {
                    next
                };
                if let Some(gate) = gate {
                    let gate = gate.into_data().try_to_vec::<f32>().expect("gate values are f32");
                    for (finished, g) in done.iter_mut().zip(gate) {
                        *finished |= f64::from(g) >= control.exit_threshold;
                    }
                }
                if done.iter().all(|x| *x) {
                    break;
                }
            }
            for (window, u) in loops.iter_mut().zip(used) {
                window.push(u);
            }
            states.push(state.clone());
        }
        Rollout { states, loops, actions }
    }

    /// Training rollout: exactly `loops` loops per patch, gradients through the last
    /// `grad_loops` of them only: the earlier loops' graph is cut (a straight-through
    /// identity to the patch's starting state), so memory does not grow with the loop
    /// count. The gate and the state's change are traced after every loop; before the
    /// gradient window they are computed from detached states, so the gate learns from
    /// every loop without reopening the cut graph.
    pub fn rollout_fixed(
        &self,
        inputs: &Inputs,
        state: Tensor<3>,
        memory: MemoryKeys,
        loops: usize,
        grad_loops: usize,
    ) -> Trace {
        let actions = self.actions(inputs);
        let [b, a, k, d] = actions.dims();
        let first_tracked = loops.saturating_sub(grad_loops.max(1));
        let (mut state, mut memory) = (state, memory);
        let mut states = Vec::with_capacity(k);
        let mut predicted = Vec::new();
        let mut loop_states = Vec::with_capacity(k);
        let (mut gates, mut changes) = (Vec::with_capacity(k), Vec::with_capacity(k));
        for patch in 0..k {
            if let Some((fresh, keys)) = self.reencode(inputs, &actions, patch, &state, &mut predicted) {
                (state, memory) = (fresh, keys);
            }
            let action = actions.clone().slice([0..b, 0..a, patch..patch + 1, 0..d]).reshape([b, a, d]);
            let (mut gate, mut change, mut detached) =
                (Vec::with_capacity(loops), Vec::with_capacity(loops), Vec::with_capacity(loops));
            let start = state.clone();
            for round in 0..loops {
                if round > 0 && round == first_tracked {
                    // Truncate: the graph of the earlier loops is dropped, and the gradient
                    // passes straight through them to the patch's starting state, so the
                    // chain across patches (and the state's initialisation) keeps learning.
                    state = start.clone() + (state - start.clone()).detach();
                }
                let next = self.step(state.clone(), action.clone(), &memory, round);
                let (new, old) = if round < first_tracked {
                    (next.clone().detach(), state.detach())
                } else {
                    (next.clone(), state)
                };
                let delta = new.clone() - old;
                change.push(delta.clone().powf_scalar(2.0).mean_dim(2).mean_dim(1).sqrt().reshape([b, 1]));
                gate.push(self.gate(new.clone(), delta));
                detached.push(new.detach());
                state = next;
            }
            gates.push(Tensor::cat(gate, 1).reshape([b, 1, loops]));
            changes.push(Tensor::cat(change, 1).reshape([b, 1, loops]));
            loop_states.push(detached);
            states.push(state.clone());
        }
        Trace { states, gates: Tensor::cat(gates, 1), changes: Tensor::cat(changes, 1), loop_states, actions }
    }
}
