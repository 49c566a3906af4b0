import SparcAttribution
import SparcModel

// Restricting a map or a mask to part of a model. Everything downstream follows from the
// keys that remain: a ranking covers only them, a mask's complement stays inside them,
// and pruning leaves every other parameter as it was — the paper's circuits search the
// MLP weights and leave attention intact (Hatefi et al. 2025, App. E).

extension RelevanceMap {
    /// The map with only the keys `keep` accepts; an error when none is left.
    public func restricted(to keep: (String) -> Bool, description: String) throws -> RelevanceMap {
        let kept = names.filter(keep)
        guard !kept.isEmpty else {
            throw MaskError.invalid("no key of this \(level.rawValue) map matches \(description) (keys look like \(names.first ?? "nothing"))")
        }
        var out = self
        out.names = kept
        out.tensors = tensors.filter { kept.contains($0.key) }
        out.provenance["restricted_to"] = [provenance["restricted_to"], description].compactMap { $0 }.joined(separator: " & ")
        return out
    }
}

extension Mask {
    /// The mask with only the keys `keep` accepts; an error when none is left.
    public func restricted(to keep: (String) -> Bool, description: String) throws -> Mask {
        let kept = names.filter(keep)
        guard !kept.isEmpty else {
            throw MaskError.invalid("no key of this \(granularity.rawValue) mask matches \(description) (keys look like \(names.first ?? "nothing"))")
        }
        var out = Mask(granularity: granularity, names: kept, shapes: shapes.filter { kept.contains($0.key) },
                       bits: bits.filter { kept.contains($0.key) })
        out.provenance = provenance
        out.provenance["restricted_to"] = [provenance["restricted_to"], description].compactMap { $0 }.joined(separator: " & ")
        return out
    }
}
